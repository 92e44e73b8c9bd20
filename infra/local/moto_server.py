"""moto's server (`python -m moto.server`), for the local stack, with two changes.

DynamoDB's writes are atomic, as on AWS. moto's server answers requests on parallel threads and
checks a write's condition and then applies it without a lock, so two conditional writes of one
item that arrive together can both pass their conditions (the second overwriting the first),
which DynamoDB never allows: the welcome email's claim, a compare-and-swap on the users item, is
exactly such a pair. Here every write request of DynamoDB runs one at a time; reads stay
concurrent.

And, about what moto reports about itself rather than an AWS API: moto's backend API
(`/moto-api/data.json`, where moto keeps the mail SES accepted) reads every attribute of every
model, and a Lambda function's `docker_client` attribute connects to a Docker engine. Without
one (this machine, CI) that raises a connection error the endpoint does not expect, and the
whole endpoint answers 500. Here a missing engine reads as a missing attribute, which the
endpoint skips. moto never needs the engine otherwise: the local stack runs the functions
itself, through the Runtime API emulator, not through moto's Lambda.
"""

import functools
import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main
from moto.utilities import docker_utilities

_dynamodb_writes = threading.Lock()


def _one_at_a_time(handle):
    @functools.wraps(handle)
    def locked(self, *args, **kwargs):
        with _dynamodb_writes:
            return handle(self, *args, **kwargs)

    return locked


for _write in ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items"):
    setattr(DynamoHandler, _write, _one_at_a_time(getattr(DynamoHandler, _write)))

_docker_client = docker_utilities.DockerModel.docker_client


def _docker_client_or_missing(model):
    try:
        return _docker_client.fget(model)
    except Exception as err:  # noqa: BLE001 - whatever docker.from_env() raises without an engine
        raise AttributeError(f"no Docker engine: {err}") from err


docker_utilities.DockerModel.docker_client = property(_docker_client_or_missing)

if __name__ == "__main__":
    main(sys.argv[1:])
