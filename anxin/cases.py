from anxin.app import Core


class BullyingCommands(Core):
    pass
