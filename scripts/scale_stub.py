"""A synthetic endpoint for EC2, Auto Scaling, SSM, STS and Organizations, for measuring amictl
at organization scale (scripts/bench --org-scale): moto can't serve tens of thousands of
requests quickly enough to measure amictl.

It makes up an organization on the fly: the caller's account (123456789012) is the management
account of --accounts member accounts (000000000001, …); AssumeRole into a member answers
credentials whose access key names it, and every later request is answered for the account of
its credentials (from the SigV4 Authorization header) and the region it was signed for. Each
account has --images images in each region (snapshot-backed, made 400 days ago); the scans of
what launches them answer with nothing, in the shapes the EC2, Auto Scaling, SSM, STS and
Organizations API references give (the same XML and JSON the SDK parses). Each answer is sent
--latency seconds after its request was read (on a select() loop: asyncio's default epoll loop
waits in whole milliseconds, rounded up, and answered half a millisecond late on average).
GET /stub/stats answers the requests by action, the total, the most in flight at once and the
mean delay of the answers as sent; POST /stub/reset clears them.

Run: python scale_stub.py --port P --accounts N --images K --latency 0.03
"""

import argparse
import asyncio
import hashlib
import json
import re
import selectors
import sys
import urllib.parse

MANAGEMENT = "123456789012"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
AUTOSCALING_NS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
PAGE = 20  # ListAccounts answers at most 20 accounts a page, as Organizations does


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.counts = {}
        self.in_flight = 0
        self.most_in_flight = 0
        # In flight, sampled every 10 ms since the first request after the reset.
        self.timeline = []
        self.connections = 0
        # How long after its request was read each answer was written: the latency kept.
        self.delays = 0.0
        self.answered = 0


def member(n):
    return f"{n:012d}"


def hexid(*parts, length=17):
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:length]


def account_of(headers):
    """The account of the request's credentials: a member's assumed-role key names it."""
    match = re.search(r"Credential=([^/]+)/\d+/([^/]+)/", headers.get("authorization", ""))
    if not match:
        return MANAGEMENT, "us-east-1"
    key, region = match.group(1), match.group(2)
    if key.startswith("ASIA") and key[4:16].isdigit():
        return key[4:16], region
    return MANAGEMENT, region


def ec2_answer(action, body):
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{EC2_NS}"><requestId>{hexid(action)}</requestId>{body}</{action}Response>'


def images_xml(account, region, count):
    items = []
    for i in range(count):
        image = f"ami-{hexid(account, region, i)}"
        snapshot = f"snap-{hexid('snap', account, region, i)}"
        items.append(
            "<item>"
            f"<imageId>{image}</imageId><imageLocation>{account}/app-{i}</imageLocation>"
            f"<imageState>available</imageState><imageOwnerId>{account}</imageOwnerId>"
            "<creationDate>2025-10-26T00:00:00.000Z</creationDate><isPublic>false</isPublic>"
            "<architecture>x86_64</architecture><imageType>machine</imageType>"
            f"<name>app-{i}</name><rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName>"
            "<blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs>"
            f"<snapshotId>{snapshot}</snapshotId><volumeSize>8</volumeSize><deleteOnTermination>true</deleteOnTermination>"
            "<volumeType>gp3</volumeType><encrypted>false</encrypted></ebs></item></blockDeviceMapping>"
            "<virtualizationType>hvm</virtualizationType><hypervisor>xen</hypervisor>"
            "</item>"
        )
    return f"<imagesSet>{''.join(items)}</imagesSet>"


# EC2 reads answered with an empty set (nothing launches the images): the set's element name.
EMPTY_SETS = {
    "DescribeInstances": "reservationSet",
    "DescribeLaunchTemplateVersions": "launchTemplateVersionSet",
    "DescribeFleets": "fleetSet",
    "DescribeSpotFleetRequests": "spotFleetRequestConfigSet",
    "DescribeSpotInstanceRequests": "spotInstanceRequestSet",
    "DescribeImageReferences": "imageReferenceSet",
    "DescribeSnapshots": "snapshotSet",
    "ListImagesInRecycleBin": "imageSet",
    "ListSnapshotsInRecycleBin": "snapshotSet",
    "DescribeImageUsageReports": "imageUsageReportSet",
}

REGIONS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-central-1", "ap-south-1"]


def ec2(action, params, account, region, images):
    if action == "DescribeImages":
        return 200, ec2_answer(action, images_xml(account, region, images))
    if action in EMPTY_SETS:
        return 200, ec2_answer(action, f"<{EMPTY_SETS[action]}/>")
    if action == "DescribeImageAttribute":
        return 200, ec2_answer(action, f"<imageId>{params.get('ImageId', '')}</imageId><launchPermission/>")
    if action == "DescribeSnapshotAttribute":
        return 200, ec2_answer(action, f"<snapshotId>{params.get('SnapshotId', '')}</snapshotId><createVolumePermission/>")
    if action == "DescribeRegions":
        items = "".join(
            f"<item><regionName>{r}</regionName><regionEndpoint>ec2.{r}.amazonaws.com</regionEndpoint>"
            "<optInStatus>opt-in-not-required</optInStatus></item>"
            for r in REGIONS
        )
        return 200, ec2_answer(action, f"<regionInfo>{items}</regionInfo>")
    return 400, (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>InvalidAction</Code>'
        f"<Message>The action {action} is not valid for this web service.</Message></Error></Errors>"
        f"<RequestID>{hexid(action)}</RequestID></Response>"
    )


def autoscaling(action):
    member_name = {"DescribeAutoScalingGroups": "AutoScalingGroups", "DescribeLaunchConfigurations": "LaunchConfigurations"}
    if action not in member_name:
        return 400, f'<ErrorResponse xmlns="{AUTOSCALING_NS}"><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>{action}</Message></Error></ErrorResponse>'
    return 200, (
        f'<{action}Response xmlns="{AUTOSCALING_NS}"><{action}Result><{member_name[action]}/></{action}Result>'
        f"<ResponseMetadata><RequestId>{hexid(action)}</RequestId></ResponseMetadata></{action}Response>"
    )


def sts(action, params, account):
    if action == "AssumeRole":
        target = re.match(r"arn:aws[a-z-]*:iam::(\d{12}):role/(.+)", params.get("RoleArn", ""))
        if not target:
            return 400, f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>bad RoleArn</Message></Error></ErrorResponse>'
        assumed, role = target.group(1), target.group(2)
        return 200, (
            f'<AssumeRoleResponse xmlns="{STS_NS}"><AssumeRoleResult><Credentials>'
            f"<AccessKeyId>ASIA{assumed}{hexid(assumed, length=4).upper()}</AccessKeyId><SecretAccessKey>stub</SecretAccessKey>"
            f"<SessionToken>stub-{assumed}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
            f"<AssumedRoleUser><Arn>arn:aws:sts::{assumed}:assumed-role/{role}/amictl</Arn><AssumedRoleId>AROA{assumed}:amictl</AssumedRoleId></AssumedRoleUser>"
            f"</AssumeRoleResult><ResponseMetadata><RequestId>{hexid(assumed)}</RequestId></ResponseMetadata></AssumeRoleResponse>"
        )
    if action == "GetCallerIdentity":
        return 200, (
            f'<GetCallerIdentityResponse xmlns="{STS_NS}"><GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/bench</Arn>'
            f"<UserId>AIDA{account}</UserId><Account>{account}</Account></GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{hexid(account)}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        )
    return 400, f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>{action}</Message></Error></ErrorResponse>'


def json_service(target, body, accounts):
    operation = target.split(".")[-1]
    if operation == "ListAccounts":
        start = int(body.get("NextToken") or 0)
        page = [
            {
                "Id": member(n),
                "Arn": f"arn:aws:organizations::{MANAGEMENT}:account/o-stub/{member(n)}",
                "Name": f"member-{n}",
                "Email": f"member-{n}@example.com",
                "Status": "ACTIVE",
                "State": "ACTIVE",
                "JoinedMethod": "CREATED",
                "JoinedTimestamp": 1700000000.0,
            }
            for n in range(start + 1, min(start + PAGE, accounts) + 1)
        ]
        answer = {"Accounts": page}
        if start + PAGE < accounts:
            answer["NextToken"] = str(start + PAGE)
        return operation, 200, answer
    if operation in ("DescribeParameters", "GetParameters"):
        return operation, 200, {"Parameters": [], "InvalidParameters": []} if operation == "GetParameters" else {"Parameters": []}
    return operation, 400, {"__type": "UnknownOperationException", "message": operation}


class Connection(asyncio.Protocol):
    """One client connection: each request read from it is answered --latency seconds later,
    in order. A protocol rather than a coroutine per connection, with a timer per answer
    rather than a sleeping task: the stub stands in for EC2, whose CPU is not on this machine,
    so it spends as little of the machine's as it can."""

    def __init__(self, options, stats):
        self.options, self.stats = options, stats
        self.buffer = b""
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.stats.connections += 1

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = lines[0].split(" ", 2)
            self.request(method, path, headers, body)

    def request(self, method, path, headers, body):
        stats = self.stats
        if path.startswith("/stub/"):
            self.send(*control(path, stats))
            return
        stats.in_flight += 1
        stats.most_in_flight = max(stats.most_in_flight, stats.in_flight)
        loop = asyncio.get_running_loop()
        read = loop.time()
        answer = respond(headers, body, self.options, stats)

        def later():
            stats.in_flight -= 1
            stats.delays += loop.time() - read
            stats.answered += 1
            self.send(*answer)

        loop.call_at(read + self.options.latency, later)

    def send(self, status, content_type, payload):
        if self.transport.is_closing():
            return
        data = payload.encode()
        self.transport.write(
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )


def control(path, stats):
    """The stub's own endpoints: its counts, and their reset."""
    if path.startswith("/stub/stats"):
        return 200, "application/json", json.dumps(
            {"counts": stats.counts, "total": sum(stats.counts.values()), "most_in_flight": stats.most_in_flight,
             "timeline": stats.timeline, "connections": stats.connections,
             "mean_delay": stats.delays / max(stats.answered, 1)}
        )
    stats.reset()
    return 200, "application/json", "{}"


class Form(dict):
    """A query-protocol form body, each value decoded when read (most are never): parse_qsl
    decoding every field was a third of the stub's time per request."""

    def get(self, key, default=None):
        value = super().get(key)
        return default if value is None else urllib.parse.unquote_plus(value)


def form(body):
    return Form(pair.split("=", 1) for pair in body.decode().split("&") if "=" in pair)


def respond(headers, body, options, stats):
    """The answer to a request to EC2, Auto Scaling, SSM, STS or Organizations, counted."""
    account, region = account_of(headers)
    target = headers.get("x-amz-target")
    if target:
        request = json.loads(body or b"{}")
        action, status, payload = json_service(target, request, options.accounts)
        result = (status, "application/x-amz-json-1.1", json.dumps(payload))
    else:
        params = form(body)
        action = params.get("Action", "")
        service = re.search(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/", headers.get("authorization", ""))
        service = service.group(1) if service else "ec2"
        if service == "sts":
            status, text = sts(action, params, account)
        elif service == "autoscaling":
            status, text = autoscaling(action)
        else:
            status, text = ec2(action, params, account, region, options.images)
        result = (status, "text/xml", text)
    if status != 200:
        print(f"scale stub: {action} answered {status}", file=sys.stderr)
    stats.counts[action] = stats.counts.get(action, 0) + 1
    return result


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.03)
    options = parser.parse_args()
    stats = Stats()

    async def sample():
        while True:
            await asyncio.sleep(0.01)
            if stats.timeline or stats.in_flight:
                stats.timeline.append(stats.in_flight)

    sampler = asyncio.create_task(sample())  # noqa: F841 (kept alive by the name)
    server = await asyncio.get_running_loop().create_server(
        lambda: Connection(options, stats), "127.0.0.1", options.port, backlog=4096
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # select() takes its timeout in microseconds; a few hundred connections are well within
    # its limit of 1,024 descriptors.
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selectors.SelectSelector())) as runner:
        runner.run(main())
