"""`anxin keys rotate`, `add` and `status`: the master key ring (anxin.keyring)."""

from __future__ import annotations

import argparse
import os

from anxin.cli.common import CLI_ACTOR, CLIError, _config, _key_file, _open
from anxin.crypto import MasterKeyFile
from anxin.storage import StoreConfig


def _rotation_key_file(config: StoreConfig) -> MasterKeyFile:
    if os.environ.get("ANXIN_MASTER_KEY"):
        raise CLIError("主密钥来自环境变量 ANXIN_MASTER_KEY：请改用密钥文件（ANXIN_MASTER_KEY_FILE）后再轮换")
    return _key_file(config)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Rotate the master key, or finish a rotation that was interrupted (anxin.keyring)."""
    keyfile = _rotation_key_file(_config(args))
    app = _open(args)
    r = app.rotate_master_key(CLI_ACTOR, key_file=keyfile)
    from anxin import keyring

    st = keyring.status(app, keyfile)
    print(f"已轮换主密钥：当前主密钥编号 {st.current}；重新封装 {r} 个数据密钥（事件未改写）。")
    print(f"密钥文件 {keyfile.path} 现只含：{'、'.join(st.file_ids or [])}。多台服务器请把它复制到每台服务器。")
    return 0


def cmd_keys_add(args: argparse.Namespace) -> int:
    """Step 1 of a rotation on several hosts: a new key in the key file, not used yet."""
    from anxin import keyring

    keyfile = _rotation_key_file(_config(args))
    key = keyring.prepare(keyfile)
    print(f"已在 {keyfile.path} 中加入新主密钥（编号 {key.kek_id}），尚未启用。")
    print("请把该密钥文件复制到每台运行 anxin 的服务器，然后在任一台运行 `anxin keys rotate`。")
    return 0


def cmd_keys_status(args: argparse.Namespace) -> int:
    """The key ring: ids, how many data keys each wraps, a rotation in progress."""
    from anxin import keyring

    config = _config(args)
    keyfile = None if os.environ.get("ANXIN_MASTER_KEY") else _key_file(config)
    app = _open(args)
    st = keyring.status(app, keyfile)
    names = {"current": "当前", "previous": "待退役", "retired": "已退役"}
    print(f"当前主密钥：{st.current}")
    for k in st.keys:
        where = "在密钥文件中" if k["in_file"] else "不在密钥文件中"
        print(f"  {k['id']}  {names.get(k['state'], k['state'])}  封装 {k['data_keys']} 个数据密钥  {where}")
    for kid in st.prepared:
        print(f"  {kid}  已加入密钥文件，尚未启用（`anxin keys rotate` 将启用它）")
    if st.in_progress:
        print("有一次轮换尚未完成：运行 `anxin keys rotate` 即可继续完成。")
        return 3
    print("没有进行中的轮换。")
    return 0
