"""The CloudFormation stacks of infra/template.yaml and infra/dagster.yaml (the control plane):
package the Lambda, deploy, destroy, and read the
outputs that the `aws` target's `Settings` come from.

Reading the outputs (`settings_from_stack`, `describe_stack`, …) and the AWS clients and errors are
sales_ops/settings.py's, which `Settings.from_env` needs; they are part of this package's interface
too, so they are exported here.
"""

from sales_ops.deploy.package import LAMBDA_PLATFORM, LAMBDA_PYTHON, ORJSON_VERSION, ZIP_EPOCH, package_lambda
from sales_ops.deploy.stack import (
    CAPABILITIES,
    DAGSTER_TEMPLATE_PATH,
    artifacts_bucket_name,
    dagster_stack_name,
    deploy,
    deploy_dagster,
    destroy,
)
from sales_ops.deploy.template import TEMPLATE_PATH, read_template
from sales_ops.settings import (
    HANDLER_PATH,
    SETTINGS_OUTPUTS,
    ClientFactory,
    StackError,
    default_region,
    describe_stack,
    make_clients,
    settings_from_stack,
    stack_outputs,
)

__all__ = [
    "CAPABILITIES",
    "DAGSTER_TEMPLATE_PATH",
    "HANDLER_PATH",
    "LAMBDA_PLATFORM",
    "LAMBDA_PYTHON",
    "ORJSON_VERSION",
    "SETTINGS_OUTPUTS",
    "TEMPLATE_PATH",
    "ZIP_EPOCH",
    "ClientFactory",
    "StackError",
    "artifacts_bucket_name",
    "dagster_stack_name",
    "default_region",
    "deploy",
    "deploy_dagster",
    "describe_stack",
    "destroy",
    "make_clients",
    "package_lambda",
    "read_template",
    "settings_from_stack",
    "stack_outputs",
]
