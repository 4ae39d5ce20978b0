from anxin.app import Core


class SupportCommands(Core):
    pass
