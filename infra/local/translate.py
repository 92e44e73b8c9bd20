#!/usr/bin/env python3
"""Translate a SAM template into plain CloudFormation JSON for moto.

    python translate.py TEMPLATE [--parameter KEY=VALUE ...]

moto does not expand the AWS::Serverless-2016-10-31 transform, so the local
stack translates the template offline with aws-sam-translator (the library
behind the real transform) and hands the result to moto's CreateStack.
The CloudFormation JSON goes to stdout; errors go to stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, NoReturn

import yaml

# Instead of the function code: moto cannot run Lambda functions anyway, and
# inline code (Code.ZipFile, which moto accepts) needs no S3 bucket or upload.
PLACEHOLDER_CODE = (
    "placeholder: moto cannot run Lambda functions; "
    "the real binary runs under the local runtime-API emulator"
)


class TranslationError(Exception):
    """A problem with the input that the user has to fix."""


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that understands CloudFormation's short-form tags."""


def _construct_intrinsic(
    loader: _CfnLoader, tag_suffix: str, node: yaml.Node
) -> dict[str, Any]:
    # "!Ref X" -> {"Ref": X}, "!Condition C" -> {"Condition": C},
    # "!GetAtt A.B" -> {"Fn::GetAtt": ["A", "B"]}, and every other
    # "!Name ..." -> {"Fn::Name": ...} (Sub, If, Equals, Join, ...).
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str) -> dict[str, Any]:
    """Read a YAML or JSON template (JSON is valid YAML)."""
    try:
        with open(path, encoding="utf-8") as stream:
            # A SafeLoader subclass: builds no arbitrary Python objects.
            template = yaml.load(stream, Loader=_CfnLoader)
    except OSError as err:
        raise TranslationError(f"cannot read template {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise TranslationError(f"template {path} is not valid YAML: {err}") from err
    if not isinstance(template, dict) or not isinstance(
        template.get("Resources"), dict
    ):
        raise TranslationError(f"template {path} has no Resources mapping")
    return template


def inline_function_code(template: dict[str, Any]) -> None:
    """Replace every AWS::Serverless::Function's CodeUri with placeholder InlineCode."""
    function_globals = (template.get("Globals") or {}).get("Function")
    if isinstance(function_globals, dict):
        # A global CodeUri would be merged back into each function.
        function_globals.pop("CodeUri", None)
    for resource in template["Resources"].values():
        if (
            not isinstance(resource, dict)
            or resource.get("Type") != "AWS::Serverless::Function"
        ):
            continue
        properties = resource.setdefault("Properties", {})
        properties.pop("CodeUri", None)
        properties["InlineCode"] = PLACEHOLDER_CODE


def parse_parameters(pairs: list[str]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TranslationError(f"--parameter expects KEY=VALUE, got {pair!r}")
        parameters[key] = value
    return parameters


def translate(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    # samtranslator builds a boto3 session for the AWS::Region pseudo
    # parameter and fails without a region: default it before importing.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.model.exceptions import (
        ExceptionWithMessage,
        InvalidDocumentException,
    )
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class NoManagedPolicies(ManagedPolicyLoader):
        """The real loader asks IAM for the AWS managed policies' ARNs, which
        SAM needs only to expand managed-policy names in a function's Policies.
        Our functions bring their own roles (no Policies), so nothing is looked
        up, and an empty map keeps the translation offline."""

        def __init__(self) -> None:  # no IAM client
            pass

        def load(self) -> dict[str, str]:
            return {}

    try:
        return transform(template, dict(parameters), NoManagedPolicies())
    except InvalidDocumentException as err:
        causes = "\n".join(f"  - {cause.message}" for cause in err.causes)
        raise TranslationError(f"{err.message}\n{causes}") from err
    except ExceptionWithMessage as err:
        raise TranslationError(err.message) from err


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Exit 1 like every other failure here (argparse's own default is 2).
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", help="path of the SAM template (YAML or JSON)")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a template parameter value; repeat for several",
    )
    args = parser.parse_args(argv)
    try:
        parameters = parse_parameters(args.parameter)
        template = load_template(args.template)
        inline_function_code(template)
        output = translate(template, parameters)
    except TranslationError as err:
        print(f"translate.py: error: {err}", file=sys.stderr)
        return 1
    json.dump(output, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
