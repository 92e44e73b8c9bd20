"""moto's server (`python -m moto.server`), for the local stack.

One change, to what moto reports about itself, not to any AWS API: moto's backend API
(`/moto-api/data.json`, where moto keeps the mail SES accepted) reads every attribute of every
model, and a Lambda function's `docker_client` attribute connects to a Docker engine. Without
one (this machine, CI) that raises a connection error the endpoint does not expect, and the
whole endpoint answers 500. Here a missing engine reads as a missing attribute, which the
endpoint skips. moto never needs the engine otherwise: the local stack runs the functions
itself, through the Runtime API emulator, not through moto's Lambda.
"""

import sys

from moto.server import main
from moto.utilities import docker_utilities

_docker_client = docker_utilities.DockerModel.docker_client


def _docker_client_or_missing(model):
    try:
        return _docker_client.fget(model)
    except Exception as err:  # noqa: BLE001 - whatever docker.from_env() raises without an engine
        raise AttributeError(f"no Docker engine: {err}") from err


docker_utilities.DockerModel.docker_client = property(_docker_client_or_missing)

if __name__ == "__main__":
    main(sys.argv[1:])
