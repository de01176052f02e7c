"""Create an object only if it does not exist: S3's conditional put (``If-None-Match: *``).

pyarrow's S3FileSystem cannot send preconditions, so this one request goes through boto3
(the ``s3`` extra). The store decides atomically: of two writers of the same key, one
gets 200 and the other 412 Precondition Failed, however close together they are. AWS S3
(since August 2024), MinIO, Cloudflare R2 and moto honour it; a store that ignored the
header would let the last writer win, so only use such a store with one writer at a time.

Credentials come from the standard AWS environment variables or profile, read by boto3
itself, as for pyarrow and deltalake (:mod:`engine.storage`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from engine.errors import BadInputError, ExecutionError
from engine.storage import Storage, _s3_error, key

log = logging.getLogger("lakescore.s3_put")

#: 409 ConditionalRequestConflict: another conditional write of the key was in flight;
#: AWS asks to retry. Retried this many times (short, growing pauses) before giving up.
_CONFLICT_RETRIES = 8


def _client(storage: Storage) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise BadInputError(
            "a registry on object storage needs boto3 for conditional puts: "
            "pip install 'lakescore[s3]'"
        ) from None
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3})
    return boto3.client(
        "s3", endpoint_url=storage.endpoint_url, region_name=storage.region, config=config
    )


def put_if_absent(storage: Storage, uri: str, data: bytes) -> bool:
    """Create ``uri`` with ``data``; False if the object already exists (someone else's)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, name = key(uri).partition("/")
    client = _client(storage)
    for attempt in range(_CONFLICT_RETRIES):
        try:
            client.put_object(Bucket=bucket, Key=name, Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "PreconditionFailed" or status == 412:
                return False
            if code == "ConditionalRequestConflict" or status == 409:
                time.sleep(0.05 * (attempt + 1))
                continue
            raise BadInputError(f"{uri}: {code or status}: {_s3_error(exc)}") from None
        except BotoCoreError as exc:
            raise BadInputError(f"{uri}: {_s3_error(exc)}") from None
    raise ExecutionError(f"{uri}: conditional put kept conflicting with another writer")
