"""moto's server, with the CloudFormation resource types the deployment uses and moto 5.2.1 lacks.

Test-only: `test/deploy/osls-deploy.test.ts` runs `osls deploy` against it. moto creates the
resources of a stack through one model class per CloudFormation type; for a type without one it
skips the resource silently and still reports the stack COMPLETE, so the test could not see the
HTTP API, the alarms or the access log's metric filter. The models below create them through moto's own backends (so the
ordinary API calls read them back), and Lambda keeps the `Architectures` its CloudFormation model
drops, and a stack's outputs follow its change sets. The deployment bucket's policy is recorded, not applied (see BucketPolicy). Everything else is moto unchanged.

Usage: python3 test/deploy/moto_server.py -H 127.0.0.1 -p PORT   (the arguments of moto.server)
"""

import json
import sys
from typing import Any

import moto

WRITTEN_FOR = "5.2.1"
if moto.__version__ != WRITTEN_FOR:
    sys.exit(f"test/deploy/moto_server.py was written for moto {WRITTEN_FOR}, found {moto.__version__}: check its models still fit")

from moto.apigatewayv2.models import apigatewayv2_backends  # noqa: E402
from moto.awslambda.models import LambdaFunction  # noqa: E402
from moto.cloudformation import parsing  # noqa: E402
from moto.cloudformation.models import ChangeSet  # noqa: E402
from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends  # noqa: E402
from moto.core.common_models import CloudFormationModel  # noqa: E402
from moto.logs.models import logs_backends  # noqa: E402
from moto.server import main  # noqa: E402
from moto.sns.models import sns_backends  # noqa: E402


# moto files every model class under the service its module is in (moto.<service>.…).
MODULE = "moto.cloudformation.test_models"


def camel(value: Any) -> Any:
    """CloudFormation's PascalCase properties as the camelCase JSON the API Gateway v2 API takes."""
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: camel(item) for key, item in value.items()}
    if isinstance(value, list):
        return [camel(item) for item in value]
    return value


class Resource(CloudFormationModel):
    """What every model here shares: a physical id, an update in place, and no attributes unless listed."""
    __module__ = MODULE

    ATTRIBUTES: tuple[str, ...] = ()

    def __init__(self, physical_id: str, properties: dict[str, Any]):
        self.physical_id = physical_id
        self.properties = properties

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def is_created(self) -> bool:
        return True

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        original_resource.update(cloudformation_json["Properties"], account_id, region_name)
        original_resource.properties = cloudformation_json["Properties"]
        return original_resource

    def update(self, properties: dict[str, Any], account_id: str, region_name: str) -> None:
        pass


class HttpApi(Resource, CloudFormationModel):
    __module__ = MODULE
    ATTRIBUTES = ("ApiEndpoint", "ApiId")

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Api"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        api = apigatewayv2_backends[account_id][region_name].create_api(
            api_key_selection_expression=None, cors_configuration=camel(p.get("CorsConfiguration")), description=p.get("Description"),
            disable_schema_validation=None, disable_execute_api_endpoint=p.get("DisableExecuteApiEndpoint"), name=p["Name"],
            protocol_type=p["ProtocolType"], route_selection_expression=None, tags=p.get("Tags") or {}, version=None,
        )
        resource = cls(api.api_id, p)
        resource.api = api
        return resource

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.api.api_endpoint if attribute_name == "ApiEndpoint" else self.api.api_id

    def update(self, properties: dict[str, Any], account_id: str, region_name: str) -> None:
        self.api.name = properties["Name"]
        self.api.description = properties.get("Description")

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        apigatewayv2_backends[account_id][region_name].delete_api(resource_name)


class HttpApiStage(Resource, CloudFormationModel):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Stage"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        config = camel({key: value for key, value in p.items() if key != "ApiId"})
        stage = apigatewayv2_backends[account_id][region_name].create_stage(p["ApiId"], config)
        resource = cls(stage.name, p)
        resource.stage = stage
        return resource

    def update(self, properties: dict[str, Any], account_id: str, region_name: str) -> None:
        config = camel(properties)
        self.stage.default_route_settings = config.get("defaultRouteSettings", {"detailedMetricsEnabled": False})
        self.stage.access_log_settings = config.get("accessLogSettings")

    def delete(self, account_id: str, region_name: str) -> None:
        backend = apigatewayv2_backends[account_id][region_name]
        # CloudFormation deletes in any order here: the API may be gone already, and its stages with it.
        if self.properties["ApiId"] in backend.apis:
            backend.delete_stage(self.properties["ApiId"], self.physical_id)


class HttpApiIntegration(Resource, CloudFormationModel):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Integration"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        integration = apigatewayv2_backends[account_id][region_name].create_integration(
            api_id=p["ApiId"], connection_id=None, connection_type=p.get("ConnectionType"), content_handling_strategy=None,
            credentials_arn=p.get("CredentialsArn"), description=p.get("Description"), integration_method=p.get("IntegrationMethod"),
            integration_subtype=None, integration_type=p["IntegrationType"], integration_uri=p.get("IntegrationUri"),
            passthrough_behavior=None, payload_format_version=p.get("PayloadFormatVersion"), request_parameters=None,
            request_templates=None, response_parameters=None, template_selection_expression=None,
            timeout_in_millis=p.get("TimeoutInMillis"), tls_config=None,
        )
        resource = cls(integration.id, p)
        resource.integration = integration
        return resource

    def update(self, properties: dict[str, Any], account_id: str, region_name: str) -> None:
        self.integration.integration_uri = properties.get("IntegrationUri")
        self.integration.payload_format_version = properties.get("PayloadFormatVersion")
        self.integration.timeout_in_millis = properties.get("TimeoutInMillis")

    def delete(self, account_id: str, region_name: str) -> None:
        backend = apigatewayv2_backends[account_id][region_name]
        # CloudFormation deletes in any order here: the API may be gone already, and its integrations with it.
        if self.properties["ApiId"] in backend.apis:
            backend.delete_integration(self.properties["ApiId"], self.physical_id)


class HttpApiRoute(Resource, CloudFormationModel):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Route"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        route = apigatewayv2_backends[account_id][region_name].create_route(
            api_id=p["ApiId"], api_key_required=False, authorization_scopes=[], authorization_type=p.get("AuthorizationType", "NONE"),
            authorizer_id=None, model_selection_expression=None, operation_name=None, request_models=None, request_parameters=None,
            route_key=p["RouteKey"], route_response_selection_expression=None, target=p.get("Target"),
        )
        resource = cls(route.route_id, p)
        resource.route = route
        return resource

    def update(self, properties: dict[str, Any], account_id: str, region_name: str) -> None:
        self.route.route_key = properties["RouteKey"]
        self.route.target = properties.get("Target")

    def delete(self, account_id: str, region_name: str) -> None:
        backend = apigatewayv2_backends[account_id][region_name]
        # CloudFormation deletes in any order here: the API may be gone already, and its routes with it.
        if self.properties["ApiId"] in backend.apis:
            backend.delete_route(self.properties["ApiId"], self.physical_id)


class BucketPolicy(Resource, CloudFormationModel):
    """Recorded as a stack resource, not applied: moto enforces bucket policies, and the deployment
    bucket's TLS-only statement would refuse every upload over the test's plain-HTTP endpoint."""

    __module__ = MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        return cls(cloudformation_json["Properties"]["Bucket"], cloudformation_json["Properties"])

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        pass


def metric_queries(metrics: list[dict[str, Any]] | None) -> list[MetricDataQuery] | None:
    if not metrics:
        return None
    queries = []
    for metric in metrics:
        stat = metric.get("MetricStat")
        metric_stat = None
        if stat:
            dimensions = [Dimension(name=d["Name"], value=d["Value"]) for d in stat["Metric"].get("Dimensions", [])]
            metric_stat = MetricStat(
                metric=Metric(metric_name=stat["Metric"]["MetricName"], namespace=stat["Metric"]["Namespace"], dimensions=dimensions),
                period=stat.get("Period"), stat=stat.get("Stat"), unit=stat.get("Unit"),
            )
        queries.append(MetricDataQuery(query_id=metric["Id"], label=metric.get("Label"), period=metric.get("Period"),
                                       return_data=metric.get("ReturnData"), expression=metric.get("Expression"), metric_stat=metric_stat))
    return queries


class Alarm(Resource, CloudFormationModel):
    __module__ = MODULE
    ATTRIBUTES = ("Arn",)

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        name = p.get("AlarmName", resource_name)
        resource = cls(name, p)
        resource.put(p, account_id, region_name)
        return resource

    def put(self, p: dict[str, Any], account_id: str, region_name: str) -> None:
        self.alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=self.physical_id, namespace=p.get("Namespace"), metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"], evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p["Period"]) if "Period" in p else None, threshold=float(p["Threshold"]), statistic=p.get("Statistic"),
            description=p.get("AlarmDescription"), dimensions=p.get("Dimensions", []), alarm_actions=p.get("AlarmActions", []),
            metric_data_queries=metric_queries(p.get("Metrics")),
            datapoints_to_alarm=int(p["DatapointsToAlarm"]) if "DatapointsToAlarm" in p else None,
            extended_statistic=p.get("ExtendedStatistic"), ok_actions=p.get("OKActions", []), insufficient_data_actions=p.get("InsufficientDataActions", []),
            unit=p.get("Unit"), actions_enabled=p.get("ActionsEnabled", True), treat_missing_data=p.get("TreatMissingData"),
        )

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.alarm.alarm_arn

    def update(self, properties: dict[str, Any], account_id: str, region_name: str) -> None:
        self.put(properties, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.physical_id])


class MetricFilter(Resource, CloudFormationModel):
    __module__ = MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Logs::MetricFilter"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        name = p.get("FilterName", resource_name)
        logs_backends[account_id][region_name].put_metric_filter(name, p["FilterPattern"], p["LogGroupName"], camel(p["MetricTransformations"]))
        return cls(name, p)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = logs_backends[account_id][region_name]
        if self.properties["LogGroupName"] in backend.groups:
            backend.delete_metric_filter(self.physical_id, self.properties["LogGroupName"])


class Subscription(Resource, CloudFormationModel):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SNS::Subscription"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        subscription = sns_backends[account_id][region_name].subscribe(p["TopicArn"], p["Endpoint"], p["Protocol"])
        return cls(subscription.arn, p)

    def delete(self, account_id: str, region_name: str) -> None:
        sns_backends[account_id][region_name].unsubscribe(self.physical_id)


create_function = LambdaFunction.create_from_cloudformation_json


def create_function_with_architectures(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
    """moto's Lambda model leaves `Architectures` out of the function it creates from a template."""
    function = create_function(resource_name, cloudformation_json, account_id, region_name, **kwargs)
    if cloudformation_json["Properties"].get("Architectures"):
        function.architectures = cloudformation_json["Properties"]["Architectures"]
    return function


LambdaFunction.create_from_cloudformation_json = classmethod(create_function_with_architectures)  # type: ignore[method-assign,assignment]

apply_change_set = ChangeSet.apply


def apply_change_set_and_outputs(self: ChangeSet) -> None:
    """moto builds a stack's outputs when the stack is created, not when a change set updates it
    (osls creates an empty stack, then updates it): rebuild them from the applied template."""
    apply_change_set(self)
    self.stack.template = self.template
    self.stack.template_dict = self.template_dict
    self.stack.output_map = self.stack._create_output_map()


ChangeSet.apply = apply_change_set_and_outputs  # type: ignore[method-assign]

# The model map is built once, on first use: it must see the classes above.
parsing.get_model_list.cache_clear()
parsing.get_model_map.cache_clear()
parsing.get_name_type_map.cache_clear()

if __name__ == "__main__":
    main(sys.argv[1:])
