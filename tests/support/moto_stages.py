"""moto 5.2.5's server, with the later stages of an image's life that EC2 has and moto lacks.

amictl's integration tests and scripts/demo start moto through this file. What it adds is kept
on moto's own image objects (so DescribeImages shows it) and answered as the EC2 API reference
documents each action:

- EnableImageDeprecation / DisableImageDeprecation: the image's DeprecationTime (seconds rounded
  to the minute; a time in the past is refused).
- EnableImageDeregistrationProtection (WithCooldown) / DisableImageDeregistrationProtection: the
  image's DeregistrationProtection, `enabled-without-cooldown` or `enabled-with-cooldown`;
  turning off one with the cooldown leaves `disabled-until <24 hours later>`. DeregisterImage
  refuses an image while it is protected.
- DisableImage (moto's) also removes every launch permission, as EC2 does; DescribeImages lists
  disabled images only with IncludeDisabled, or when asked for them by ID.
- RunInstances sets the image's LastLaunchedTime (EC2 reports launches up to a day late; here
  at once).
- CopyImage (moto's) also applies TagSpecifications (`image` and `snapshot`, as EC2 does), and
  Encrypted / KmsKeyId to the copy's snapshot (DescribeSnapshots and the image's block device
  mappings show them). The copy is `pending` for a while, as EC2's are: COPY_SECONDS, or the
  number of seconds in the source image's `amictl-test:copy-seconds` tag (a knob for tests).
- The Recycle Bin. A retention rule (made with `POST /amictl-test/retention-rule?account=…&
  region=…&resource=image|snapshot&days=N`, standing in for the rbin service's CreateRule, a
  Region-level rule) makes DeregisterImage move the image into the bin, and DeleteSnapshot the
  snapshot, for that many days; without one they are gone for good. ListImagesInRecycleBin and
  ListSnapshotsInRecycleBin answer from the bin (ImageIds / SnapshotIds filter it; entries past
  their exit time are gone). RestoreSnapshotFromRecycleBin brings a snapshot back;
  RestoreImageFromRecycleBin an image, but only while its snapshot exists outside the bin: AWS's
  Recycle Bin guide says an AMI whose snapshots were deleted can't be recovered (the guide names
  no error code; this server answers `InvalidSnapshot.NotFound`).
- CreateLaunchTemplateVersion (moto's) also takes SourceVersion: the new version inherits the
  source version's launch template data, except what LaunchTemplateData names (moto keeps only
  the data sent, where EC2 inherits the rest).
- SSM parameters of data type `aws:ec2:image` are checked after PutParameter answers, as SSM
  documents: PutParameter answers the version it will be at once; the version shows in
  GetParameter(s) only VALIDATION_SECONDS later, and only if the value is an image available
  in the account and region then (otherwise it is dropped, with no error). A parameter can't
  change to or from that data type (ValidationException).
- GetParameters and GetParameter answer `NAME:VERSION` and `NAME:LABEL` with the `Selector`
  SSM sends (moto leaves it out).
- Image usage reports (CreateImageUsageReport, DescribeImageUsageReports,
  DescribeImageUsageReportEntries, DeleteImageUsageReport), as the EC2 API reference and the
  "View your AMI usage" guide describe them: a report is `pending` for REPORT_SECONDS (or the
  seconds in the image's `amictl-test:report-seconds` tag), then `available`, its entries counted
  then from what the other accounts on this server hold in the region: their instances that are
  not terminated (`ec2:Instance`) and their launch templates with a version naming the image
  (`ec2:LaunchTemplate`, one per template), the owner's own left out, restricted to AccountId.N
  if given. Reports expire 30 days after creation.
- `POST /amictl-test/image-age?account=…&region=…&image=…&days=N` makes an image N days old
  (moto makes every image now).
Run as moto_server is: python moto_stages.py -H 127.0.0.1 -p PORT.
"""

import datetime
import json
import os
import sys
import threading
import urllib.parse

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import amis as ami_models
from moto.ec2.models import instances as instance_models
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.launch_templates import LaunchTemplates
from moto.ssm.exceptions import ValidationException
from moto.ssm.responses import SimpleSystemManagerResponse

COOLDOWN = datetime.timedelta(hours=24)
COPY_SECONDS = 1
COPY_SECONDS_TAG = "amictl-test:copy-seconds"
IMAGE_DATA_TYPE = "aws:ec2:image"
VALIDATION_SECONDS = 0.5
REPORT_SECONDS = 1
REPORT_SECONDS_TAG = "amictl-test:report-seconds"
REPORT_LIFETIME = datetime.timedelta(days=30)
# (owner account, region) -> report ID -> report
USAGE_REPORTS = {}


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse(value):
    """A timestamp: moto hands request parameters over parsed, or text from an image."""
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def protected(ami):
    """Whether DeregisterImage must refuse the image now."""
    state = getattr(ami, "deregistration_protection", None) or "disabled"
    if state.startswith("enabled"):
        return True
    if state.startswith("disabled-until "):
        return parse(state.split(" ", 1)[1]) > now()
    return False


def image(response):
    """The image a request names (moto's errors for a missing or deregistered one)."""
    ami_id = response._get_param("ImageId")
    response.error_on_dryrun()
    backend = response.ec2_backend
    if ami_id in backend.deleted_amis:
        raise ami_models.UnvailableAMIIdError(ami_id)
    if ami_id not in backend.amis:
        raise ami_models.InvalidAMIIdError(ami_id)
    return backend.amis[ami_id]


def enable_image_deprecation(self):
    ami = image(self)
    at = parse(self._get_param("DeprecateAt"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.timezone.utc)
    if at <= now():
        raise EC2ClientError("InvalidParameterValue", "The deprecation time can't be in the past.")
    rounded = (at + datetime.timedelta(seconds=30)).replace(second=0, microsecond=0)
    ami.deprecation_time = iso(rounded)
    return ActionResult({"Return": True})


def disable_image_deprecation(self):
    ami = image(self)
    ami.deprecation_time = None
    return ActionResult({"Return": True})


def enable_image_deregistration_protection(self):
    ami = image(self)
    with_cooldown = str(self._get_param("WithCooldown", "false")).lower() == "true"
    ami.deregistration_protection = "enabled-with-cooldown" if with_cooldown else "enabled-without-cooldown"
    return ActionResult({"Return": ami.deregistration_protection})


def disable_image_deregistration_protection(self):
    ami = image(self)
    state = getattr(ami, "deregistration_protection", None) or "disabled"
    if state == "enabled-with-cooldown":
        ami.deregistration_protection = f"disabled-until {iso(now() + COOLDOWN)}"
    elif state.startswith("enabled"):
        ami.deregistration_protection = "disabled"
    return ActionResult({"Return": ami.deregistration_protection})


AmisResponse.enable_image_deprecation = enable_image_deprecation
AmisResponse.disable_image_deprecation = disable_image_deprecation
AmisResponse.enable_image_deregistration_protection = enable_image_deregistration_protection
AmisResponse.disable_image_deregistration_protection = disable_image_deregistration_protection


_moto_create_launch_template_version = LaunchTemplates.create_launch_template_version


def create_launch_template_version(self):
    """SourceVersion, as the API reference documents it: the source version's data, with what
    LaunchTemplateData names taking its place."""
    source = self._get_param("SourceVersion")
    if not source:
        return _moto_create_launch_template_version(self)
    name = self._get_param("LaunchTemplateName")
    template_id = self._get_param("LaunchTemplateId")
    if template_id:
        template = self.ec2_backend.get_launch_template(template_id)
    else:
        template = self.ec2_backend.get_launch_template_by_name(name)
    inherited = dict(template.get_version(source).data)
    inherited.update(self._get_param("LaunchTemplateData", {}))
    original = self._get_param

    def with_inherited(key, *default, **kwargs):
        if key == "LaunchTemplateData":
            return inherited
        return original(key, *default, **kwargs)

    self._get_param = with_inherited
    try:
        return _moto_create_launch_template_version(self)
    finally:
        self._get_param = original


LaunchTemplates.create_launch_template_version = create_launch_template_version

backend_class = ami_models.AmiBackend
moto_deregister = backend_class.deregister_image
moto_disable = backend_class.disable_image
moto_describe = backend_class.describe_images


def disable_image(self, ami_id):
    moto_disable(self, ami_id)
    # A disabled image is private: every launch permission goes.
    self.amis[ami_id].launch_permissions = []


backend_class.disable_image = disable_image

moto_describe_response = AmisResponse.describe_images


def copy_image(self):
    source_id = self._get_param("SourceImageId")
    source_region = self._get_param("SourceRegion")
    result = moto_copy_response(self)
    ami = self.ec2_backend.amis[result.result["ImageId"]]
    from moto.ec2.models import ec2_backends

    source = ec2_backends[self.current_account][source_region].amis.get(source_id)
    seconds = COPY_SECONDS
    if source is not None:
        knob = [t["value"] for t in source.get_tags() if t["key"] == COPY_SECONDS_TAG]
        seconds = float(knob[0]) if knob else seconds
    for spec in self._get_param("TagSpecifications", []) or []:
        tags = {t["Key"]: t.get("Value", "") for t in spec.get("Tags", spec.get("Tag", []))}
        target = {"image": ami.id, "snapshot": ami.ebs_snapshot.id}.get(spec.get("ResourceType"))
        if target is None:
            raise EC2ClientError("InvalidParameterValue", f"'{spec.get('ResourceType')}' can't be tagged by CopyImage.")
        self.ec2_backend.create_tags([target], tags)
    # EC2 reports each copy's source (DescribeImages' SourceImageId and SourceImageRegion).
    ami.source_image_id = source_id
    ami.source_image_region = source_region
    if str(self._get_param("Encrypted", "false")).lower() == "true":
        ami.ebs_snapshot.encrypted = True
        ami.ebs_snapshot.kms_key_id = key_arn(self, self._get_param("KmsKeyId") or "alias/aws/ebs")
    if seconds > 0:
        ami.state = "pending"
        ami.copy_ready_at = now() + datetime.timedelta(seconds=seconds)
    return result


def finish_copies(backend):
    """Copies whose time has come are available."""
    for ami in backend.amis.values():
        ready_at = getattr(ami, "copy_ready_at", None)
        if ready_at is not None and ready_at <= now():
            ami.state = "available"
            ami.copy_ready_at = None


moto_copy_response = AmisResponse.copy_image
AmisResponse.copy_image = copy_image


def key_arn(response, key):
    """The key ARN EC2 reports for a key named by ID, alias or ARN (an alias stands for a key
    of its own name here: the test server has no KMS to resolve it)."""
    if key.startswith("arn:"):
        return key
    name = key.replace("alias/", "alias-")
    return f"arn:aws:kms:{response.region}:{response.current_account}:key/{name}"


def block_device_mappings(self):
    mappings = moto_block_device_mappings.fget(self)
    for mapping in mappings:
        encrypted = bool(getattr(self.ebs_snapshot, "encrypted", False))
        mapping["Ebs"]["Encrypted"] = encrypted
        if encrypted:
            mapping["Ebs"]["KmsKeyId"] = self.ebs_snapshot.kms_key_id
    return mappings


moto_block_device_mappings = ami_models.Ami.block_device_mappings
ami_models.Ami.block_device_mappings = property(block_device_mappings)


def describe_images(self):
    finish_copies(self.ec2_backend)
    include_disabled = str(self._get_param("IncludeDisabled", "false")).lower() == "true"
    named = bool(self._get_param("ImageIds", []))
    result = moto_describe_response(self)
    if not (include_disabled or named):
        result.result["Images"] = [ami for ami in result.result["Images"] if ami.state != "disabled"]
    return result


AmisResponse.describe_images = describe_images

moto_run_instances = instance_models.InstanceBackend.run_instances


def run_instances(self, image_id, *args, **kwargs):
    reservation = moto_run_instances(self, image_id, *args, **kwargs)
    for instance in reservation.instances:
        ami = self.amis.get(instance.image_id)
        if ami is not None:
            ami.last_launched_time = iso(now())
    return reservation


instance_models.InstanceBackend.run_instances = run_instances

for name in (
    "deprecation_time",
    "deregistration_protection",
    "last_launched_time",
    "copy_ready_at",
    "source_image_id",
    "source_image_region",
):
    setattr(ami_models.Ami, name, None)


# --- The Recycle Bin -------------------------------------------------------------------------

RETENTION_RULES = {}  # (account, region, "image" | "snapshot") -> days


def retention_days(backend, resource):
    return RETENTION_RULES.get((backend.account_id, backend.region_name, resource))


def binned(backend, kind):
    """The bin of one kind in this account and region, without what has left it for good."""
    name = f"amictl_bin_{kind}"
    if not hasattr(backend, name):
        setattr(backend, name, {})
    bin_ = getattr(backend, name)
    for key in [k for k, entry in bin_.items() if entry["exit"] <= now()]:
        del bin_[key]
    return bin_


def into_bin(backend, kind, key, resource, days):
    entered = now()
    binned(backend, kind)[key] = {
        "resource": resource,
        "enter": entered,
        "exit": entered + datetime.timedelta(days=days),
    }


def deregister_into_bin(self, ami_id):
    days = retention_days(self, "image")
    ami = self.amis.get(ami_id)
    if ami is not None and protected(ami):
        raise EC2ClientError(
            "OperationNotPermitted",
            f"The image {ami_id} can't be deregistered: deregistration protection is enabled for it.",
        )
    if ami is None or days is None:
        return moto_deregister(self, ami_id)
    self.amis.pop(ami_id)
    self.deleted_amis.append(ami_id)
    into_bin(self, "image", ami_id, ami, days)


backend_class.deregister_image = deregister_into_bin

ebs_backend_class = __import__("moto.ec2.models.elastic_block_store", fromlist=["x"]).EBSBackend
moto_delete_snapshot = ebs_backend_class.delete_snapshot


def delete_snapshot_into_bin(self, snapshot_id):
    snapshot = moto_delete_snapshot(self, snapshot_id)
    days = retention_days(self, "snapshot")
    if days is not None:
        into_bin(self, "snapshot", snapshot_id, snapshot, days)
    return snapshot


ebs_backend_class.delete_snapshot = delete_snapshot_into_bin


def list_images_in_recycle_bin(self):
    wanted = set(self._get_param("ImageIds", []) or [])
    images = []
    for ami_id, entry in binned(self.ec2_backend, "image").items():
        if wanted and ami_id not in wanted:
            continue
        ami = entry["resource"]
        images.append(
            {
                "ImageId": ami_id,
                "Name": ami.name,
                "Description": ami.description,
                "RecycleBinEnterTime": entry["enter"],
                "RecycleBinExitTime": entry["exit"],
            }
        )
    return ActionResult({"Images": images})


def list_snapshots_in_recycle_bin(self):
    wanted = set(self._get_param("SnapshotIds", []) or [])
    snapshots = []
    for snapshot_id, entry in binned(self.ec2_backend, "snapshot").items():
        if wanted and snapshot_id not in wanted:
            continue
        snapshot = entry["resource"]
        snapshots.append(
            {
                "SnapshotId": snapshot_id,
                "Description": snapshot.description,
                "VolumeId": snapshot.volume.id if snapshot.volume else None,
                "RecycleBinEnterTime": entry["enter"],
                "RecycleBinExitTime": entry["exit"],
            }
        )
    return ActionResult({"Snapshots": snapshots})


def restore_snapshot_from_recycle_bin(self):
    snapshot_id = self._get_param("SnapshotId")
    self.error_on_dryrun()
    entry = binned(self.ec2_backend, "snapshot").pop(snapshot_id, None)
    if entry is None:
        raise EC2ClientError("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist in the Recycle Bin.")
    self.ec2_backend.snapshots[snapshot_id] = entry["resource"]
    return ActionResult({"SnapshotId": snapshot_id, "State": "completed"})


def restore_image_from_recycle_bin(self):
    ami_id = self._get_param("ImageId")
    self.error_on_dryrun()
    backend = self.ec2_backend
    bin_ = binned(backend, "image")
    entry = bin_.get(ami_id)
    if entry is None:
        raise EC2ClientError("InvalidAMIID.NotFound", f"The image id '[{ami_id}]' is not in the Recycle Bin.")
    ami = entry["resource"]
    snapshot = getattr(ami, "ebs_snapshot", None)
    if snapshot is not None and snapshot.id not in backend.snapshots:
        raise EC2ClientError(
            "InvalidSnapshot.NotFound",
            f"The image {ami_id} can't be restored: its snapshot {snapshot.id} does not exist.",
        )
    del bin_[ami_id]
    backend.amis[ami_id] = ami
    if ami_id in backend.deleted_amis:
        backend.deleted_amis.remove(ami_id)
    return ActionResult({"Return": True})


AmisResponse.list_images_in_recycle_bin = list_images_in_recycle_bin
AmisResponse.list_snapshots_in_recycle_bin = list_snapshots_in_recycle_bin
AmisResponse.restore_snapshot_from_recycle_bin = restore_snapshot_from_recycle_bin
AmisResponse.restore_image_from_recycle_bin = restore_image_from_recycle_bin


def usage_entries(owner, region, image_id, resource_types, accounts):
    """What the other accounts on this server hold in the region that names the image."""
    from moto.ec2.models import ec2_backends

    counts = {}
    for account in list(ec2_backends.keys()):
        if account == owner or (accounts and account not in accounts) or region not in ec2_backends[account].keys():
            continue
        backend = ec2_backends[account][region]
        if "ec2:Instance" in resource_types:
            running = [i for i in backend.all_instances() if i.image_id == image_id and i._state.name != "terminated"]
            if running:
                counts[(account, "ec2:Instance")] = len(running)
        if "ec2:LaunchTemplate" in resource_types:
            templates = [
                t for t in backend.launch_templates.values() if any(v.image_id == image_id for v in t.versions[-20:])
            ]
            if templates:
                counts[(account, "ec2:LaunchTemplate")] = len(templates)
    return counts


def report_state(report):
    """pending until its time has come; then available, its entries counted at that moment."""
    if report["state"] == "pending" and now() >= report["ready_at"]:
        report["entries"] = usage_entries(
            report["owner"], report["region"], report["image_id"], report["resource_types"], report["accounts"]
        )
        report["state"] = "available"
    return report


def reports_here(self):
    key = (self.current_account, self.region)
    reports = USAGE_REPORTS.setdefault(key, {})
    for report_id in [r for r, report in reports.items() if now() >= report["created"] + REPORT_LIFETIME]:
        del reports[report_id]
    return reports


def create_image_usage_report(self):
    image_id = self._get_param("ImageId")
    ami = self.ec2_backend.amis.get(image_id)
    if ami is None or ami.owner_id != self.current_account:
        raise EC2ClientError("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
    resource_types = [r.get("ResourceType") for r in (self._get_param("ResourceTypes") or [])]
    if not resource_types:
        raise EC2ClientError("MissingParameter", "The request must contain the parameter ResourceType")
    knob = [t["value"] for t in ami.get_tags() if t["key"] == REPORT_SECONDS_TAG]
    seconds = float(knob[0]) if knob else REPORT_SECONDS
    report_id = "amiur-" + os.urandom(9).hex()[:17]
    created = now()
    reports_here(self)[report_id] = {
        "report_id": report_id,
        "owner": self.current_account,
        "region": self.region,
        "image_id": image_id,
        "resource_types": resource_types,
        "accounts": list(self._get_param("AccountIds") or []),
        "created": created,
        "ready_at": created + datetime.timedelta(seconds=seconds),
        "state": "pending",
        "entries": {},
    }
    return ActionResult({"ReportId": report_id})


def reports_asked(self):
    """The reports of this account and region that ImageId.N and ReportId.N ask for."""
    wanted_images = set(self._get_param("ImageIds") or [])
    wanted_reports = set(self._get_param("ReportIds") or [])
    for report in list(reports_here(self).values()):
        if wanted_images and report["image_id"] not in wanted_images:
            continue
        if wanted_reports and report["report_id"] not in wanted_reports:
            continue
        yield report_state(report)


def describe_image_usage_reports(self):
    found = []
    for report in reports_asked(self):
        found.append(
            {
                "ImageId": report["image_id"],
                "ReportId": report["report_id"],
                "ResourceTypes": [{"ResourceType": r} for r in report["resource_types"]],
                "AccountIds": report["accounts"],
                "State": report["state"],
                "CreationTime": iso(report["created"]),
                "ExpirationTime": iso(report["created"] + REPORT_LIFETIME),
            }
        )
    return ActionResult({"ImageUsageReports": found})


def describe_image_usage_report_entries(self):
    entries = []
    for report in reports_asked(self):
        if report["state"] != "available":
            continue
        for (account, resource_type), count in sorted(report["entries"].items()):
            entries.append(
                {
                    "ResourceType": resource_type,
                    "ReportId": report["report_id"],
                    "UsageCount": count,
                    "AccountId": account,
                    "ImageId": report["image_id"],
                    "ReportCreationTime": iso(report["created"]),
                }
            )
    return ActionResult({"ImageUsageReportEntries": entries})


def delete_image_usage_report(self):
    reports_here(self).pop(self._get_param("ReportId"), None)
    return ActionResult({"Return": True})


AmisResponse.create_image_usage_report = create_image_usage_report
AmisResponse.describe_image_usage_reports = describe_image_usage_reports
AmisResponse.describe_image_usage_report_entries = describe_image_usage_report_entries
AmisResponse.delete_image_usage_report = delete_image_usage_report


moto_put_parameter = SimpleSystemManagerResponse.put_parameter
moto_get_parameter = SimpleSystemManagerResponse.get_parameter


def image_available(account, region, image_id):
    from moto.ec2.models import ec2_backends

    ami = ec2_backends[account][region].amis.get(image_id)
    return ami is not None and getattr(ami, "state", "available") == "available"


def put_parameter(self):
    """aws:ec2:image values are checked after the answer: the new version is held back, shown
    VALIDATION_SECONDS later if the image is available then, dropped otherwise."""
    name = self._get_param("Name")
    data_type = self._get_param("DataType") or "text"
    versions = self.ssm_backend._parameters.get(name) or []
    if versions and (versions[-1].data_type == IMAGE_DATA_TYPE) != (data_type == IMAGE_DATA_TYPE):
        raise ValidationException(
            f"The parameter {name} is of data type {versions[-1].data_type}; "
            f"a parameter can't be changed to or from {IMAGE_DATA_TYPE}."
        )
    answer = moto_put_parameter(self)
    if data_type != IMAGE_DATA_TYPE:
        return answer
    held = self.ssm_backend._parameters[name].pop()
    account, region = self.current_account, self.region

    def check():
        if image_available(account, region, held.value):
            self.ssm_backend._parameters[name].append(held)
            self.ssm_backend._parameters[name].sort(key=lambda p: p.version)

    timer = threading.Timer(VALIDATION_SECONDS, check)
    timer.daemon = True
    timer.start()
    return answer


def selector(asked):
    """`:VERSION` or `:LABEL` of a name (or ARN) as asked, or None."""
    bare = asked.split(":parameter", 1)[-1] if asked.startswith("arn:") else asked
    return ":" + bare.split(":", 1)[1] if ":" in bare else None


def get_parameters(self):
    names = self._get_param("Names")
    with_decryption = self._get_param("WithDecryption")
    found = self.ssm_backend.get_parameters(names)
    response = {"Parameters": [], "InvalidParameters": [n for n in names if n not in found]}
    for asked, parameter in found.items():
        answer = parameter.response_object(with_decryption, self.region)
        if selector(asked):
            answer["Selector"] = selector(asked)
        response["Parameters"].append(answer)
    return ActionResult(response)


def get_parameter(self):
    answer = moto_get_parameter(self)
    asked = self._get_param("Name")
    if selector(asked):
        answer.result["Parameter"]["Selector"] = selector(asked)
    return answer


SimpleSystemManagerResponse.put_parameter = put_parameter
SimpleSystemManagerResponse.get_parameters = get_parameters
SimpleSystemManagerResponse.get_parameter = get_parameter


def image_age(environ, start_response):
    """`POST /amictl-test/image-age?account=&region=&image=&days=N`: the image was made N days
    ago (moto makes every image now; a test of what a day's age changes needs an older one)."""
    from moto.ec2.models import ec2_backends

    query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    try:
        ami = ec2_backends[query["account"]][query["region"]].amis[query["image"]]
        ami.creation_date = now() - datetime.timedelta(days=float(query["days"]))
    except (KeyError, ValueError) as err:
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [json.dumps({"error": f"bad or missing {err}"}).encode()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"image": query["image"], "created": iso(ami.creation_date)}).encode()]


def control(environ, start_response):
    """`POST /amictl-test/retention-rule?account=&region=&resource=image|snapshot&days=N`."""
    query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    try:
        key = (query["account"], query["region"], query["resource"])
        if query["resource"] not in ("image", "snapshot"):
            raise KeyError("resource")
        RETENTION_RULES[key] = float(query["days"])
    except (KeyError, ValueError) as err:
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [json.dumps({"error": f"bad or missing {err}"}).encode()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"rule": list(key), "days": RETENTION_RULES[key]}).encode()]


from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: E402

moto_dispatch = DomainDispatcherApplication.__call__


def dispatch(self, environ, start_response):
    if environ.get("PATH_INFO", "").startswith("/amictl-test/retention-rule"):
        return control(environ, start_response)
    if environ.get("PATH_INFO", "").startswith("/amictl-test/image-age"):
        return image_age(environ, start_response)
    return moto_dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = dispatch

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
