"""Test infrastructure: runs moto's AWS emulator on a free loopback port.

strata's integration tests start this once per test run (one server, every test in
its own moto account through the `x-moto-account-id` header). It prints the port on
stdout, then serves until its stdin closes, which happens when the test process ends,
so no server outlives the tests. Pinned to the moto version scripts/setup installs
(5.2.5), whose known gaps it patches below (ten of them); strata itself never fakes AWS behaviour.
"""

import datetime
import logging
import sys
import uuid

from moto.autoscaling.models import FakeAutoScalingGroup, InstanceState
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.instances import Instance
from moto.ec2.models.launch_templates import LaunchTemplate
from moto.ec2.models.nat_gateways import NatGatewayBackend
from moto.ec2.responses._base_response import EC2BaseResponse
from moto.ec2.responses.launch_templates import LaunchTemplates
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix, parse_user_data
from moto.server import ThreadedMotoServer

# moto 5.2.5 gap: EC2 refuses a call whose filters hold more than 200 values in all
# ("FilterLimitExceeded: The maximum number of filter values specified on a single
# call is 200"); moto takes any number.
_filters_from_querystring = EC2BaseResponse._filters_from_querystring


def _filters_within_limit(self):
    filters = _filters_from_querystring(self)
    if sum(len(values) for values in filters.values()) > 200:
        raise EC2ClientError(
            "FilterLimitExceeded",
            "The maximum number of filter values specified on a single call is 200",
        )
    return filters


EC2BaseResponse._filters_from_querystring = _filters_within_limit

# moto 5.2.5 gap: CreateLaunchTemplateVersion stores UserData as a plain string where
# CreateLaunchTemplate stores it parsed, and instances launched from such a version
# crash the server. Parse it the same way in both paths.
_create_version = LaunchTemplate.create_version


def _create_version_parsed(self, data, description):
    if isinstance(data.get("UserData"), str):
        data["UserData"] = parse_user_data(data["UserData"])
    return _create_version(self, data, description)


LaunchTemplate.create_version = _create_version_parsed

# moto 5.2.5 gap: a group's instances report the template's *default* version as the
# one they were launched from (InstanceState.launch_template), whatever they run. AWS
# reports the version each instance was launched with: the group's version, resolved
# at launch. Record it on the instance when the group launches it, and report it.
_replace_instances = FakeAutoScalingGroup.replace_autoscaling_group_instances


def _replace_instances_recording_version(self, count_needed, propagated_tags):
    template = self.ec2_launch_template
    version = template.get_version(self.launch_template_version).number if template else None
    _replace_instances(self, count_needed, propagated_tags)
    for state in self.instance_states:
        if not hasattr(state.instance, "launched_template_version"):
            state.instance.launched_template_version = version


def _launch_template_as_launched(self):
    template = self.auto_scaling_group.ec2_launch_template
    if template is None:
        return None
    version = getattr(self.instance, "launched_template_version", None)
    return {
        "LaunchTemplateId": template.id,
        "LaunchTemplateName": template.name,
        "Version": str(version if version is not None else template.default_version_number),
    }


FakeAutoScalingGroup.replace_autoscaling_group_instances = _replace_instances_recording_version
InstanceState.launch_template = property(_launch_template_as_launched)

# moto 5.2.5 gap: StartInstanceRefresh, DescribeInstanceRefreshes and
# CancelInstanceRefresh are not implemented (HTTP 500). A minimal model: a refresh
# replaces the group's instances (with SkipMatching, only those launched from another
# version than the group's, as AWS does) with new ones on the group's version, is
# recorded with the preferences it was given and completes at once.
_REFRESHES = {}


def _refresh(group, skip_matching):
    if group.ec2_launch_template is None:
        return
    wanted = group.ec2_launch_template.get_version(group.launch_template_version).number
    stale = [
        state
        for state in group.instance_states
        if not skip_matching
        or getattr(state.instance, "launched_template_version", None) != wanted
    ]
    group.instance_states = [s for s in group.instance_states if s not in stale]
    if stale:
        group.autoscaling_backend.ec2_backend.terminate_instances(
            [s.instance.id for s in stale]
        )
    # Launches the replacements (on the group's version) and registers them in the
    # group's target groups.
    group.set_desired_capacity(group.desired_capacity)


def _start_instance_refresh(self):
    group = self._get_param("AutoScalingGroupName")
    preferences = self._get_param("Preferences") or {}
    skip_matching = str(preferences.get("SkipMatching", False)).lower() == "true"
    _refresh(self.autoscaling_backend.autoscaling_groups[group], skip_matching)
    now = datetime.datetime.now(datetime.timezone.utc)
    refresh = {
        "InstanceRefreshId": str(uuid.uuid4()),
        "AutoScalingGroupName": group,
        "Status": "Successful",
        "PercentageComplete": 100,
        "StartTime": now,
        "EndTime": now,
        "Preferences": {
            k: preferences[k]
            for k in ("MinHealthyPercentage", "InstanceWarmup", "SkipMatching")
            if k in preferences
        },
    }
    _REFRESHES.setdefault((self.current_account, self.region, group), []).insert(0, refresh)
    return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})


def _describe_instance_refreshes(self):
    group = self._get_param("AutoScalingGroupName")
    ids = self._get_param("InstanceRefreshIds") or []
    found = _REFRESHES.get((self.current_account, self.region, group), [])
    if ids:
        found = [r for r in found if r["InstanceRefreshId"] in ids]
    return ActionResult({"InstanceRefreshes": found, "NextToken": None})


def _cancel_instance_refresh(self):
    group = self._get_param("AutoScalingGroupName")
    for refresh in _REFRESHES.get((self.current_account, self.region, group), []):
        if refresh["Status"] in ("Pending", "InProgress"):
            refresh["Status"] = "Cancelled"
            return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})
    return ActionResult({})


AutoScalingResponse.start_instance_refresh = _start_instance_refresh
AutoScalingResponse.describe_instance_refreshes = _describe_instance_refreshes
AutoScalingResponse.cancel_instance_refresh = _cancel_instance_refresh

# moto 5.2.5 gap: terminating an instance keeps its private address taken in its
# subnet (its primary network interface is not deleted), so a replacement cannot
# launch at the same address. EC2 frees the address with the instance; do the same.
_terminate = Instance.terminate


def _terminate_freeing_address(self):
    previous = _terminate(self)
    subnet_id = self.subnet_id
    if subnet_id:
        subnet = self.ec2_backend.get_subnet(subnet_id)
        for ip in list(self._private_ips):
            subnet.del_subnet_ip(ip)
    return previous


Instance.terminate = _terminate_freeing_address

# moto 5.2.5 gap: a launch template's tags are copied once at creation, so a tag added
# later with CreateTags (strata records the commit applied that way) never shows in
# DescribeLaunchTemplates. Read them from the tag store, as EC2 does.
LaunchTemplate.tags = property(lambda self: self.get_tags(), lambda self, _value: None)

# moto 5.2.5 gap: deleting a NAT gateway leaves its elastic IP associated, so a NAT
# gateway replaced in another subnet cannot take the same address. EC2 releases the
# association when the gateway is deleted; do the same.
_delete_nat_gateway = NatGatewayBackend.delete_nat_gateway


def _delete_nat_gateway_releasing_address(self, nat_gateway_id):
    gateway = _delete_nat_gateway(self, nat_gateway_id)
    for address in self.addresses:
        if address.eni is not None and address.eni is getattr(gateway, "_eni", None):
            self.disassociate_address(association_id=address.association_id)
    return gateway


NatGatewayBackend.delete_nat_gateway = _delete_nat_gateway_releasing_address

# moto 5.2.5 gap: DescribeLaunchTemplates and DescribeLaunchTemplateVersions answer the
# first MaxResults items and no NextToken, so a region with more templates than a page
# loses the rest. EC2 pages them; do the same (the token is the next item's offset).
def _paged(describe, items_key):
    def paged(self):
        size = self._get_int_param("MaxResults", 15)
        start = int(self._get_param("NextToken") or 0)
        get_int_param = self._get_int_param
        # The whole listing, then the page asked for.
        self._get_int_param = lambda name, default=None: (
            10**9 if name == "MaxResults" else get_int_param(name, default)
        )
        try:
            result = describe(self).result
        finally:
            del self._get_int_param
        items = result[items_key]
        result[items_key] = items[start : start + size]
        if start + size < len(items):
            result["NextToken"] = str(start + size)
        return ActionResult(result)

    return paged


LaunchTemplates.describe_launch_templates = _paged(
    LaunchTemplates.describe_launch_templates, "LaunchTemplates"
)
LaunchTemplates.describe_launch_template_versions = _paged(
    LaunchTemplates.describe_launch_template_versions, "LaunchTemplateVersions"
)

# moto 5.2.5 gap: a resource's tags are found by matching its id, as a regular
# expression, against every tag of every resource in the account, so describing N
# resources with a tag filter costs N scans of the account: a plan of 1,000
# environments took moto hours where EC2 answers at once. Look the resource up instead
# (the same tags in the same order).
def _own_tags(self):
    if not self.id:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
    return [
        {"resource_id": self.id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in self.ec2_backend.tags.get(self.id, {}).items()
    ]


TaggedEC2Resource.get_tags = _own_tags

# moto 5.2.5 gap: DescribeNatGateways ignores `tag:<key>` filters and answers every
# gateway, so environments read in sets of 100 saw each gateway once per set. EC2
# filters by tag; do the same.
_describe_nat_gateways = NatGatewayBackend.describe_nat_gateways


def _describe_nat_gateways_by_tag(self, filters, nat_gateway_ids):
    by_tag = {k[4:]: v for k, v in (filters or {}).items() if k.startswith("tag:")}
    rest = {k: v for k, v in (filters or {}).items() if not k.startswith("tag:")}
    found = _describe_nat_gateways(self, rest if filters is not None else None, nat_gateway_ids)
    return [
        gateway
        for gateway in found
        if all(
            any(t["key"] == key and t["value"] in values for t in gateway.get_tags())
            for key, values in by_tag.items()
        )
    ]


NatGatewayBackend.describe_nat_gateways = _describe_nat_gateways_by_tag

# One line per request on stderr would drown test and demo output.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
_host, port = server.get_host_and_port()
print(port, flush=True)
sys.stdin.read()
server.stop()
