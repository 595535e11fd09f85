"""Many processes on one study: who runs a trial (the `worker` user attr, shown by `hpo status`) and
one-time steps that exactly one of them may take."""

from __future__ import annotations

import json
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

from hpo import upstream

if TYPE_CHECKING:
    import optuna


def worker_id() -> str:
    """host:pid of this process: unique among live workers on any number of machines."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_once(study: "optuna.Study", key: str, value: Any = True) -> bool:
    """True for exactly one of all the processes that ask, on any machine: an INSERT into the study's
    system attrs, which are unique per (study, key), so a second claimant's insert fails. The winner's
    `value` is the attr's."""
    from hpo.study.counts import rdb_backend

    rdb, storage, sid = rdb_backend(study), upstream.storage_of(study), upstream.study_id(study)
    if rdb is None:  # not shareable between processes: a plain check is enough
        if key in storage.get_study_system_attrs(sid):
            return False
        storage.set_study_system_attr(sid, key, value)
        return True
    import sqlalchemy as sa

    table = upstream.rdb_models().StudySystemAttributeModel.__table__
    try:
        with rdb.engine.begin() as conn:
            conn.execute(table.insert().values(study_id=sid, key=key, value_json=json.dumps(value)))
    except sa.exc.IntegrityError:
        return False
    return True


def study_uid(study: "optuna.Study") -> str:
    """The study's identity in its store: a random id recorded once, by whoever asks first. A study of the same
    name in a fresh store gets another, so what was made from the old one is not taken for the new one's."""
    key = "hpo:study_id"
    storage, sid = upstream.storage_of(study), upstream.study_id(study)
    attrs = storage.get_study_system_attrs(sid)
    if key not in attrs:
        claim_once(study, key, uuid.uuid4().hex)
        attrs = storage.get_study_system_attrs(sid)
    return str(attrs[key])
