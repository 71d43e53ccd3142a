"""amictl's benchmark: amictl against the AWS CLI and against the endpoint's floor, side by
side in one run against the same local moto server. Run it through scripts/bench.

Scenarios (medians of --runs runs):
  describe N   `amictl -o json describe` vs `aws ec2 describe-images --owners self` vs one
               raw DescribeImages request (the floor)
  cleanup N    `amictl cleanup --all --yes` vs the requests it cannot do without (each image's
               launch permissions and each snapshot's create-volume permissions, then
               DeregisterImage, whether the Recycle Bin holds the image, and DeleteSnapshot)
               fired by 8 workers straight at the server (the floor) vs a shell loop
               of `aws ec2 deregister-image` + `aws ec2 delete-snapshot` (timed on a sample
               and scaled to N)
  rate limits  `amictl cleanup --all --yes` of N images behind a proxy that throttles like EC2
               (a token bucket per action: DeregisterImage and DeleteSnapshot 100 burst, 5/s;
               one for the reads, DescribeImageAttribute, DescribeSnapshotAttribute and
               ListImagesInRecycleBin, 100 burst, 20/s; --rate-scale multiplies the refills), with
               the floor no client can beat, the throttled share, and with AWS_RETRY_MODE=adaptive
               (and N images in each of two regions at once: each region has its own buckets, so the
               floor is one region's)
  plan N,M     `amictl cleanup --all --dry-run` over N and over M images: the planning step's own
               time (amictl logs it at -v), which must grow linearly with the account
  accounts N,M `amictl describe --org --role-name R --regions us-east-1,eu-west-1` over an
               organization of N and of M member accounts (10 images in each account and
               region): wall time and peak RSS, which must grow with the accounts, not faster;
               through the counting proxy, one AssumeRole per account and one ListAccounts; and
               the JSON's peak RSS with 10 and 60 images per account and region (it is written
               as it is read: it must not grow with the images)
  org scale    (--org-scale 50,250,1000, run alone) against scripts/scale_stub.py, a synthetic
               EC2/STS/Organizations/Auto Scaling/SSM endpoint that delays every answer by 30 ms
               and makes up N accounts x 4 regions x 2 images: `describe --org` and
               `cleanup --org --all --dry-run` (JSON and table), each --runs times: the median
               wall time and its run's floor, the median peak RSS, requests by action; checks: at most 1.25x the floor, peak RSS at 1,000 accounts
               within 1.5x of that at 50 and under 150 MiB, one AssumeRole per account,
               ListAccounts paged once. The floor is the larger of two bounds no client can beat:
               the work (the requests it made x 30 ms / the most it had in flight at once) and
               the chain of answers each waits on (the ListAccounts pages one after another, the
               last account's AssumeRole, then its dependent reads: one for describe, two for a
               cleanup plan; each 30 ms; GetCallerIdentity goes beside the first page). "answer" is the stub's own mean
               delay per answer, as it measured it: the floor counts 30 ms, so time the stub
               answers late is counted against amictl
  start-up     `amictl --version` and a usage error
  memory       peak RSS of `amictl describe` over --memory-images images

Requests by action come from a counting proxy between amictl and moto; wall times are taken
without it.
"""

import argparse
import concurrent.futures
import http.client
import http.server
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter

REGION = "us-east-1"
# moto routes by the credential scope of the Authorization header; it checks no signature.
def auth(region):
    return f"AWS4-HMAC-SHA256 Credential=bench/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "NO_COLOR": "1",
    "PATH": os.environ.get("PATH", ""),
    "HOME": os.environ.get("HOME", "/tmp"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ec2:
    """Raw EC2 query-protocol requests over one keep-alive connection."""

    def __init__(self, port, region=REGION):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.auth = auth(region)

    def call(self, action, **params):
        body = urllib.parse.urlencode({"Action": action, "Version": "2016-11-15", **params})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": self.auth}
        self.conn.request("POST", "/", body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"{action}: {response.status} {text[:200]}")
        return text


class Moto:
    def __init__(self, venv):
        self.port = free_port()
        # moto with what EC2 has and moto lacks (the Recycle Bin among it), as the tests run it.
        support = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "support")
        env = dict(os.environ, MOTO_EC2_LOAD_DEFAULT_AMIS="false", AMICTL_TEST_SUPPORT=support)
        launcher = "import os, sys; sys.path.insert(0, os.environ['AMICTL_TEST_SUPPORT']); import moto_stages; from moto.server import main; main(sys.argv[1:])"
        self.process = subprocess.Popen(
            [os.path.join(venv, "bin", "python"), "-c", launcher, "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto did not start")

    def reset(self):
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"))

    def seed(self, n, workers=8, region=REGION):
        """n images of one instance in `region`; returns [(image_id, snapshot_id)]."""
        ec2 = Ec2(self.port, region)
        instance = re.search(
            r"<instanceId>(i-[0-9a-f]+)</instanceId>",
            ec2.call("RunInstances", ImageId="ami-12345678", InstanceType="t3.micro", MinCount=1, MaxCount=1),
        ).group(1)

        def create(chunk):
            client = Ec2(self.port, region)
            return [
                re.search(r"<imageId>(ami-[0-9a-f]+)</imageId>", client.call("CreateImage", InstanceId=instance, Name=f"bench-{i}")).group(1)
                for i in chunk
            ]

        chunks = [range(w, n, workers) for w in range(workers)]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            images = [i for part in pool.map(create, chunks) for i in part]
        listing = ec2.call("DescribeImages", **{"Owner.1": "self"})
        snapshots = dict(re.findall(r"<snapshotId>(snap-[0-9a-f]+)</snapshotId>.*?<imageId>(ami-[0-9a-f]+)</imageId>", listing, re.S))
        by_image = {image: snap for snap, image in snapshots.items()}
        return [(image, by_image.get(image)) for image in images]

    def organization(self, accounts, images, regions):
        """An organization (the caller's account its management account) of `accounts` member
        accounts, each with `images` images in each region, made through an assumed role
        `bench` as amictl will reach them; returns the members' IDs."""
        import boto3

        session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
        orgs = session.client("organizations", endpoint_url=self.url)
        orgs.create_organization(FeatureSet="ALL")
        members = [
            orgs.create_account(AccountName=f"bench-{n}", Email=f"bench-{n}@example.com")["CreateAccountStatus"]["AccountId"]
            for n in range(accounts)
        ]
        sts = session.client("sts", endpoint_url=self.url)

        def fill(member):
            creds = sts.assume_role(RoleArn=f"arn:aws:iam::{member}:role/bench", RoleSessionName="seed")["Credentials"]
            for region in regions:
                ec2 = boto3.session.Session(
                    aws_access_key_id=creds["AccessKeyId"],
                    aws_secret_access_key=creds["SecretAccessKey"],
                    aws_session_token=creds["SessionToken"],
                    region_name=region,
                ).client("ec2", endpoint_url=self.url)
                instance = ec2.run_instances(ImageId="ami-12345678", InstanceType="t3.micro", MinCount=1, MaxCount=1)
                instance_id = instance["Instances"][0]["InstanceId"]
                for i in range(images):
                    ec2.create_image(InstanceId=instance_id, Name=f"bench-{member}-{i}")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(fill, members))
        return members

    def stop(self):
        self.process.terminate()
        self.process.wait()


class CountingProxy:
    """Counts requests by action on their way to moto; with `buckets` ({action: (burst, per
    second)}) it throttles those actions the way EC2 does, with a token bucket per region and
    action, answering RequestLimitExceeded when one is empty."""

    def __init__(self, upstream_port, buckets=None, shared=None):
        counts = self.counts = Counter()
        throttled = self.throttled = Counter()
        lock = threading.Lock()
        buckets = buckets or {}
        tokens = {}

        def take(region, action):
            # Actions EC2 meters together share one bucket (`shared`: action -> bucket name).
            action = (shared or {}).get(action, action)
            if action not in buckets:
                return True
            burst, rate = buckets[action]
            bucket = tokens.setdefault((region, action), [float(burst), float(rate), float(burst), time.monotonic()])
            burst, rate, level, at = bucket
            now = time.monotonic()
            level = min(burst, level + (now - at) * rate)
            ok = level >= 1.0
            bucket[2], bucket[3] = (level - 1.0 if ok else level), now
            return ok

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                action = target.split(".")[-1] if target else urllib.parse.parse_qs(body.decode()).get("Action", ["?"])[0]
                scope = re.search(r"Credential=[^/]*/[^/]*/([^/]*)/", self.headers.get("Authorization", ""))
                with lock:
                    counts[action] += 1
                    allowed = take(scope.group(1) if scope else "?", action)
                    if not allowed:
                        throttled[action] += 1
                if not allowed:
                    data = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>RequestLimitExceeded</Code>"
                            b"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>bench</RequestID></Response>")
                    self.send_response(503)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")}
                upstream.request("POST", self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("connection", "content-length", "transfer-encoding", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self):
        counts = dict(self.counts)
        self.counts.clear()
        return counts

    def stop(self):
        self.server.shutdown()


def timed(argv, endpoint, rss=False):
    """Wall seconds (and peak RSS in MiB) of one command: its own, from its start to its exit
    as wait4 reports it (no /usr/bin/time between, whose own fork and exec would count)."""
    env = dict(ENV, AWS_ENDPOINT_URL=endpoint)
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in (0, 2):
            stderr.seek(0)
            raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {stderr.read().decode()[-500:]}")
    # ru_maxrss is in KiB on Linux.
    return wall, (usage.ru_maxrss / 1024 if rss else None)


def median(values):
    return statistics.median(values) if values else float("nan")


def report(checks, width):
    """Prints the goals, measured, and whether each is met; the exit status (1: one is not)."""
    print(f"\n{'goal':<{width}} {'measured':>10}  {'target':<8} met")
    failed = 0
    for name, value, target, ok in checks:
        failed += not ok
        print(f"{name:<{width}} {value:>10.3f}  {target:<8} {'yes' if ok else 'NO'}")
    print(f"\n{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


class Stub:
    """scripts/scale_stub.py on a free port."""

    def __init__(self, venv, accounts, latency):
        self.port = free_port()
        stub = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale_stub.py")
        self.process = subprocess.Popen(
            [os.path.join(venv, "bin", "python"), stub, "--port", str(self.port), "--accounts", str(accounts),
             "--images", "2", "--latency", str(latency)],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the scale stub did not start")

    def stats(self):
        return json.loads(urllib.request.urlopen(f"{self.url}/stub/stats", timeout=2).read())

    def reset(self):
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/stub/reset", method="POST"), timeout=2)

    def stop(self):
        self.process.terminate()
        self.process.wait()


def org_scale(args):
    """The organization-scale scenario (see the module's doc)."""
    regions = "us-east-1,eu-west-1,us-west-2,ap-south-1"
    org = ["--org", "--role-name", "bench", "--regions", regions]
    # Each command, and the answers a context waits on one after another once its role is
    # assumed: DescribeImages; for a plan, then the scans and per-image reads together.
    commands = [
        ("describe", ["-o", "json", "describe"] + org, 1),
        ("cleanup plan (JSON)", ["-o", "json", "cleanup", "--all", "--dry-run"] + org, 2),
        ("cleanup plan (table)", ["cleanup", "--all", "--dry-run"] + org, 2),
    ]
    sizes = [int(x) for x in args.org_scale.split(",") if x]
    rows, checks, peaks = [], [], {}
    for accounts in sizes:
        stub = Stub(args.venv, accounts, args.latency)
        try:
            for name, argv, dependent in commands:
                # The run of median time (--runs of them), and the median peak RSS: a single
                # sub-second run is at the mercy of whatever else the machine does.
                runs = []
                for _ in range(args.runs):
                    stub.reset()
                    wall, peak = timed([args.amictl] + argv, stub.url, rss=True)
                    runs.append((wall, peak, stub.stats()))
                runs.sort(key=lambda run: run[0])
                wall, _, stats = runs[len(runs) // 2]
                peak = median([p for _, p, _ in runs if p is not None]) if runs[0][1] is not None else None
                pages = -(-accounts // 20)
                work = stats["total"] * args.latency / max(stats["most_in_flight"], 1)
                chain = (pages + 1 + dependent) * args.latency
                floor = max(work, chain)
                peaks[(name, accounts)] = peak or float("nan")
                rows.append((accounts, name, wall, floor, peak, stats))
                checks.append((f"{name} {accounts}: time / floor", wall / floor, "<= 1.25", wall / floor <= 1.25))
                ok = stats["counts"].get("AssumeRole") == accounts and stats["counts"].get("ListAccounts") == pages
                checks.append((f"{name} {accounts}: AssumeRole per account, ListAccounts pages", stats["counts"].get("AssumeRole", 0) / accounts,
                               f"1, {pages}", ok))
        finally:
            stub.stop()
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for name, _, _ in commands:
            growth = peaks[(name, large)] / peaks[(name, small)]
            checks.append((f"{name}: peak RSS at {large} / at {small}", growth, "<= 1.5", growth <= 1.5))
            checks.append((f"{name}: peak RSS at {large} (MiB)", peaks[(name, large)], "< 150", peaks[(name, large)] < 150))
    print(f"\nmedian of {args.runs} runs each")
    print(f"{'accounts x 4':<13} {'command':<22} {'wall':>8} {'floor':>8} {'ratio':>6} {'peak RSS':>10} {'in flight':>9} "
          f"{'answer':>8}  requests by action")
    for accounts, name, wall, floor, peak, stats in rows:
        req = ", ".join(f"{k} {v}" for k, v in sorted(stats["counts"].items()))
        rss = f"{peak:.1f} MiB" if peak else "-"
        # The stub's own mean delay per answer: the floor counts the nominal latency.
        answer = f"{stats['mean_delay'] * 1000:.2f} ms"
        print(f"{accounts:<13} {name:<22} {wall:>6.2f} s {floor:>6.2f} s {wall / floor:>6.2f} {rss:>10} {stats['most_in_flight']:>9} "
              f"{answer:>8}  {req}")
    return report(checks, 60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--describe-images", default="500,2000", help="image counts for describe (comma-separated)")
    parser.add_argument("--cleanup-images", type=int, default=500)
    parser.add_argument("--cli-sample", type=int, default=10, help="images the AWS CLI loop removes, to scale from")
    parser.add_argument("--memory-images", type=int, default=10000)
    parser.add_argument("--plan-images", default="5000,20000", help="two image counts for the planning scenario ('' skips it)")
    parser.add_argument("--rate-limit-images", default="200,1000", help="image counts for the EC2 rate limits scenario ('' skips it)")
    parser.add_argument("--two-regions-images", default="200",
                        help="image counts per region for the rate limits scenario in two regions at once ('' skips it)")
    parser.add_argument("--rate-scale", type=float, default=1.0,
                        help="refill rates times this (EC2's: 5/s for DeregisterImage and DeleteSnapshot, 20/s for Describe*); 10 keeps the ratios and shortens the run")
    parser.add_argument("--accounts", default="5,40",
                        help="two organization sizes for the accounts scenario, each in two regions ('' skips it)")
    parser.add_argument("--org-scale", nargs="?", const="50,250,1000", default=None,
                        help="run only the organization-scale scenario, for these account counts (default 50,250,1000)")
    parser.add_argument("--latency", type=float, default=0.03, help="the scale stub's delay per answer, in seconds")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--amictl", required=True)
    parser.add_argument("--aws", required=True)
    parser.add_argument("--venv", required=True)
    args = parser.parse_args()
    if args.org_scale is not None:
        return org_scale(args)

    moto = Moto(args.venv)
    proxy = CountingProxy(moto.port)
    rows, checks = [], []
    amictl, aws = args.amictl, args.aws
    try:
        for n in [int(x) for x in args.describe_images.split(",") if x]:
            moto.reset()
            moto.seed(n)
            a = [timed([amictl, "-o", "json", "describe"], moto.url, rss=True) for _ in range(args.runs)]
            c = [timed([aws, "ec2", "describe-images", "--owners", "self"], moto.url) for _ in range(args.runs)]
            raw = []
            for _ in range(args.runs):
                start = time.perf_counter()
                Ec2(moto.port).call("DescribeImages", **{"Owner.1": "self"})
                raw.append(time.perf_counter() - start)
            timed([amictl, "-o", "json", "describe"], proxy.url)
            requests = proxy.take()
            am, cm, rm = median([w for w, _ in a]), median([w for w, _ in c]), median(raw)
            rows += [
                (f"describe {n}", "amictl", am, requests, max(p or 0 for _, p in a)),
                ("", "aws CLI", cm, {"DescribeImages": 1}, None),
                ("", "one raw request (floor)", rm, {"DescribeImages": 1}, None),
            ]
            checks += [
                (f"describe {n}: amictl / aws CLI", am / cm, "<= 0.25", am / cm <= 0.25),
                (f"describe {n}: amictl / floor", am / rm, "<= 1.3", am / rm <= 1.3),
            ]

        n = args.cleanup_images
        if n:
            a, f, counted = [], [], None
            for run in range(args.runs):
                moto.reset()
                moto.seed(n)
                a.append(timed([amictl, "cleanup", "--all", "--yes", "-q"], moto.url)[0])
                moto.reset()
                pairs = moto.seed(n)
                start = time.perf_counter()

                # The floor does what amictl must: read each image's launch permissions
                # (whether another account may launch it), then deregister it and delete its
                # snapshot.
                def reader(share):
                    client = Ec2(moto.port)
                    for image, _ in share:
                        client.call("DescribeImageAttribute", ImageId=image, Attribute="launchPermission")

                def snapshot_reader(share):
                    client = Ec2(moto.port)
                    for _, snapshot in share:
                        client.call("DescribeSnapshotAttribute", SnapshotId=snapshot, Attribute="createVolumePermission")

                def worker(share):
                    client = Ec2(moto.port)
                    for image, snapshot in share:
                        client.call("DeregisterImage", ImageId=image)
                        if snapshot:
                            client.call("ListImagesInRecycleBin", **{"ImageId.1": image})
                            client.call("DeleteSnapshot", SnapshotId=snapshot)

                with concurrent.futures.ThreadPoolExecutor(8) as pool:
                    list(pool.map(reader, [pairs[w::8] for w in range(8)]))
                    list(pool.map(snapshot_reader, [pairs[w::8] for w in range(8)]))
                    list(pool.map(worker, [pairs[w::8] for w in range(8)]))
                f.append(time.perf_counter() - start)
            moto.reset()
            moto.seed(n)
            timed([amictl, "cleanup", "--all", "--yes", "-q"], proxy.url)
            counted = proxy.take()
            moto.reset()
            sample = moto.seed(args.cli_sample)
            env = dict(ENV, AWS_ENDPOINT_URL=moto.url)
            start = time.perf_counter()
            for image, snapshot in sample:
                subprocess.run([aws, "ec2", "deregister-image", "--image-id", image], env=env, stdout=subprocess.DEVNULL, check=True)
                subprocess.run([aws, "ec2", "delete-snapshot", "--snapshot-id", snapshot], env=env, stdout=subprocess.DEVNULL, check=True)
            loop = (time.perf_counter() - start) / len(sample) * n
            am, fm = median(a), median(f)
            rows += [
                (f"cleanup {n}", "amictl", am, counted, None),
                ("", "8 raw workers (floor)", fm, {"DescribeImageAttribute": n, "DescribeSnapshotAttribute": n, "DeregisterImage": n,
                                                   "ListImagesInRecycleBin": n, "DeleteSnapshot": n}, None),
                ("", f"aws CLI loop (x{n // args.cli_sample} of {args.cli_sample})", loop, {"DeregisterImage": n, "DeleteSnapshot": n}, None),
            ]
            checks += [
                (f"cleanup {n}: amictl / floor", am / fm, "<= 1.2", am / fm <= 1.2),
                (f"cleanup {n}: aws CLI loop / amictl", loop / am, ">= 20", loop / am >= 20),
                (f"cleanup {n}: one write per image and per snapshot",
                 (counted.get("DeregisterImage", 0) + counted.get("DeleteSnapshot", 0)) / (2 * n), "== 1",
                 counted.get("DeregisterImage") == n and counted.get("DeleteSnapshot") == n),
            ]

        def behind_buckets(n, regions, mode):
            """`amictl cleanup --all --yes` of n images in each region behind EC2-like buckets;
            adds its rows and checks."""
            scale = args.rate_scale
            writes_rate, reads_rate, burst = 5 * scale, 20 * scale, 100
            # Regions have buckets of their own: the floor is one region's. Two reads an image
            # come before the writes (launch and create-volume permissions); the Recycle Bin
            # read after each DeregisterImage shares the reads' bucket, well within its refill.
            floor = max(0, 2 * n - burst) / reads_rate + max(0, n - burst) / writes_rate
            moto.reset()
            for region in regions:
                moto.seed(n, region=region)
            limited = CountingProxy(moto.port, {
                "DeregisterImage": (burst, writes_rate),
                "DeleteSnapshot": (burst, writes_rate),
                "reads": (burst, reads_rate),
            }, shared={action: "reads" for action in
                       ("DescribeImageAttribute", "DescribeSnapshotAttribute", "ListImagesInRecycleBin")})
            env = dict(ENV, AWS_ENDPOINT_URL=limited.url)
            if mode:
                env["AWS_RETRY_MODE"] = mode
            start = time.perf_counter()
            done = subprocess.run([amictl, "cleanup", "--all", "--yes", "-q", "-o", "json", "--regions", ",".join(regions)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            wall = time.perf_counter() - start
            limited.stop()
            report = json.loads(done.stdout or b"{}")
            failures = report.get("summary", {}).get("failures", "?")
            writes = n * 2 * len(regions)
            throttled = limited.throttled["DeregisterImage"] + limited.throttled["DeleteSnapshot"]
            label = f"rate limits {n}" + (f" x {len(regions)} regions" if len(regions) > 1 else "") + (" adaptive" if mode else "")
            rows.append((label, f"amictl (exit {done.returncode}, {failures} failed)", wall, dict(limited.counts), None))
            rows.append(("", "floor (the buckets' refill)", floor, None, None))
            checks.extend([
                (f"{label}: amictl / floor", wall / floor, "<= 1.10", wall / floor <= 1.10),
                (f"{label}: throttled writes / writes needed", throttled / writes, "<= 0.10", throttled / writes <= 0.10),
                (f"{label}: failures", float(failures if isinstance(failures, int) else 1) + done.returncode, "== 0",
                 done.returncode == 0 and failures == 0),
            ])

        for n in [int(x) for x in args.rate_limit_images.split(",") if x]:
            for mode in ("", "adaptive"):
                behind_buckets(n, [REGION], mode)
        for n in [int(x) for x in args.two_regions_images.split(",") if x]:
            behind_buckets(n, [REGION, "eu-west-1"], "")

        plan_sizes = [int(x) for x in args.plan_images.split(",") if x]
        planned = {}
        for n in plan_sizes:
            moto.reset()
            moto.seed(n)
            micros = []
            for _ in range(args.runs):
                start = time.perf_counter()
                done = subprocess.run(
                    [amictl, "-v", "-o", "json", "cleanup", "--all", "--dry-run", "--include-shared"],
                    env=dict(ENV, AWS_ENDPOINT_URL=moto.url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True,
                )
                wall = time.perf_counter() - start
                found = re.search(r"micros=(\d+)", done.stderr.decode())
                if not found:
                    raise RuntimeError(f"no 'planned' log line: {done.stderr.decode()[-500:]}")
                micros.append(int(found.group(1)))
            planned[n] = median(micros) / 1e6
            rows.append((f"plan {n}", "amictl (planning step)", planned[n], None, None))
            rows.append(("", "amictl (whole dry run)", wall, None, None))
        if len(plan_sizes) == 2:
            small, large = plan_sizes
            growth = (planned[large] / planned[small]) / (large / small)
            checks.append((f"plan: time per image at {large} / at {small}", growth, "<= 1.5", growth <= 1.5))

        sizes = [int(x) for x in args.accounts.split(",") if x]
        measured = {}
        regions = [REGION, "eu-west-1"]
        for accounts in sizes:
            moto.reset()
            moto.organization(accounts, 10, regions)
            argv = [amictl, "-o", "json", "describe", "--org", "--role-name", "bench", "--regions", ",".join(regions)]
            runs = [timed(argv, moto.url, rss=True) for _ in range(args.runs)]
            timed(argv, proxy.url)
            requests = proxy.take()
            wall, peak = median([w for w, _ in runs]), max(p or 0 for _, p in runs)
            measured[accounts] = (wall, peak)
            rows.append((f"accounts {accounts}", f"amictl ({accounts} x {len(regions)} regions)", wall,
                         {k: v for k, v in requests.items() if k in ("AssumeRole", "ListAccounts", "DescribeImages")}, peak))
            # ListAccounts pages by 20 (amictl asks for Organizations' largest page); the
            # management account is listed too.
            pages = -(-(accounts + 1) // 20)
            checks.append((f"accounts {accounts}: AssumeRole per account, ListAccounts {pages}",
                           requests.get("AssumeRole", 0) / accounts, "== 1",
                           requests.get("AssumeRole") == accounts and requests.get("ListAccounts") == pages))
        if len(sizes) == 2:
            small, large = sizes
            (t_small, m_small), (t_large, m_large) = measured[small], measured[large]
            per_account = (t_large / large) / (t_small / small)
            checks.append((f"accounts: time per account at {large} / at {small}", per_account, "<= 1.0", per_account <= 1.0))
            memory = m_large / m_small if m_small else float("nan")
            checks.append((f"accounts: peak RSS at {large} / at {small} (x{large // small} accounts)", memory, "<= 2.0",
                           memory <= 2.0))
            # JSON is written as each account x region is read: memory must not grow with the images.
            peaks = {}
            for images in (10, 60):
                moto.reset()
                moto.organization(small * 2, images, regions)
                argv = [amictl, "-o", "json", "describe", "--org", "--role-name", "bench", "--regions", ",".join(regions)]
                runs = [timed(argv, moto.url, rss=True) for _ in range(args.runs)]
                peaks[images] = max(p or 0 for _, p in runs)
                rows.append((f"accounts {small * 2}", f"amictl -o json ({images} images each)", median([w for w, _ in runs]),
                             None, peaks[images]))
            growth = peaks[60] / peaks[10] if peaks[10] else float("nan")
            checks.append(("accounts: JSON peak RSS with 6x the images", growth, "<= 1.1", growth <= 1.1))

        version = [timed([amictl, "--version"], moto.url)[0] for _ in range(21)]
        usage = [timed([amictl, "describe", "ami-bad"], moto.url)[0] for _ in range(21)]
        checks += [
            ("start-up: amictl --version (ms)", median(version) * 1000, "< 5", median(version) < 0.005),
            ("start-up: a usage error (ms)", median(usage) * 1000, "< 10", median(usage) < 0.010),
        ]

        if args.memory_images:
            moto.reset()
            moto.seed(args.memory_images)
            wall, peak = timed([amictl, "-o", "json", "describe"], moto.url, rss=True)
            rows.append((f"describe {args.memory_images}", "amictl", wall, None, peak))
            checks.append((f"memory: peak RSS describing {args.memory_images} (MiB)", peak or float("nan"), "< 50", (peak or 1e9) < 50))
    finally:
        moto.stop()

    print(f"\n{'scenario':<16} {'tool':<30} {'wall (median)':>14}  {'peak RSS':>9}  requests by action")
    for scenario, tool, wall, requests, peak in rows:
        req = ", ".join(f"{k} {v}" for k, v in sorted((requests or {}).items()))
        rss = f"{peak:.1f} MiB" if peak else "-"
        print(f"{scenario:<16} {tool:<30} {wall:>12.3f} s  {rss:>9}  {req}")
    return report(checks, 52)


if __name__ == "__main__":
    sys.exit(main())
