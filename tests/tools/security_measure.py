#!/usr/bin/env python3
"""Measures resource-exhaustion attacks against a running ec2-gateway binary.

Usage:
  python3 tests/tools/security_measure.py --binary PATH/TO/ec2-gateway [--scenario NAME ...]

Each scenario starts a fresh server (temporary data dir, high quotas, instant
lifecycle), runs the attack, and prints one line with the server's peak RSS
(VmHWM), current RSS, data dir size, wall and server CPU time, and the HTTP
status/error codes seen. Needs Linux (/proc), Python 3.11 and botocore.
"""
import argparse, base64, collections, http.client, os, random, re, shutil, signal
import socket, string, subprocess, sys, tempfile, threading, time, urllib.parse
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCOUNT1 = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
ACCOUNT2 = ("AKIAUSEREXAMPLE00001", "userSecretKeyExample00000000000000000000")
CONFIG = """listen = "127.0.0.1:0"
operator_listen = "127.0.0.1:0"
data_dir = "{data_dir}"
region = "us-east-1"

[[accounts]]
id = "111122223333"
name = "operator"
admin = true
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

[[accounts]]
id = "444455556666"
name = "alice"
access_key_id = "AKIAUSEREXAMPLE00001"
secret_access_key = "userSecretKeyExample00000000000000000000"
{hosts}
[quotas]
max_instances = 1000000
max_vcpus = 10000000
{raised_quotas}
[lifecycle]
boot_delay_secs = 0
stop_delay_secs = 0
terminate_delay_secs = 0
terminated_retention_secs = 60
volume_delay_secs = 0
snapshot_delay_secs = 0
{raised_sections}"""
# --raise-limits (binaries from the security fixes on): the same attacks with
# the new limits lifted, to measure the work itself rather than the refusal.
RAISED_QUOTAS = """max_rules_per_security_group = 2000
max_fleet_share_percent = 100
"""
RAISED_SECTIONS = """
[rate_limits]
enabled = false
"""
RAISE_LIMITS = False
HOST = """
[[hosts]]
name = "node-{z}1"
availability_zone = "us-east-1{z}"
vcpus = 100000
memory_mib = 100000000
"""
CLK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
TIMEOUT = 60.0


class Server:
    def __init__(self, binary):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="ec2gw-measure-")
        self.data = os.path.join(self.dir, "data")
        self.proc = None

    def start(self):
        cfg = os.path.join(self.dir, "config.toml")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(data_dir=self.data, hosts="".join(HOST.format(z=z) for z in "abc"),
                                  raised_quotas=RAISED_QUOTAS if RAISE_LIMITS else "",
                                  raised_sections=RAISED_SECTIONS if RAISE_LIMITS else ""))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ, EC2_GATEWAY_LISTEN=f"127.0.0.1:{self.port}", EC2_GATEWAY_LOG="warn")
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen([self.binary, "serve", "--config", cfg], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: "
                                   + open(self.log.name, errors="replace").read()[-2000:])
            try:
                if call(self, "DescribeRegions", {}, timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not answer within 60 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def status(self, key):  # kB -> MiB
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def cpu(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK

    def disk(self):
        total = 0
        for root, _, files in os.walk(self.data):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
                except OSError:
                    pass
        return total / MIB

    def snap(self):
        return dict(t=time.time(), cpu=self.cpu(), rss=self.status("VmRSS"),
                    hwm=self.status("VmHWM"), disk=self.disk())


class Codes:
    def __init__(self):
        self.counter, self.lock = collections.Counter(), threading.Lock()

    def add(self, code):
        with self.lock:
            self.counter[code] += 1

    def __str__(self):
        return ",".join(f"{k}x{v}" for k, v in sorted(self.counter.items())) or "-"


def call(server, action, params, account=ACCOUNT1, timeout=None, codes=None):
    """Signed POST; returns (status, error code or None, seconds, body text).
    A transport failure gives status 0 and code EXC:<type>."""
    pairs = [("Action", action), ("Version", "2016-11-15")] + list(params.items() if isinstance(params, dict) else params)
    body = urllib.parse.urlencode(pairs).encode()
    url = f"http://127.0.0.1:{server.port}/"
    req = AWSRequest(method="POST", url=url, data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(*account), "ec2", "us-east-1").add_auth(req)
    started = time.time()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout or TIMEOUT)
    try:
        conn.request("POST", "/", body=body, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        status = resp.status
        m = re.search(r"<Code>([^<]*)</Code>", text) if status >= 300 else None
        code = m.group(1) if m else None
    except (OSError, http.client.HTTPException) as e:
        status, code, text = 0, "EXC:" + type(e).__name__, ""
    finally:
        conn.close()
    elapsed = time.time() - started
    if codes is not None:
        codes.add(f"{status}" + (f":{code}" if code else ""))
    return status, code, elapsed, text


def first(pattern, text):
    m = re.search(pattern, text)
    return m.group(1) if m else None


def image_id(server, codes):
    return first(r"<imageId>([^<]+)</imageId>", call(server, "DescribeImages", {}, codes=codes)[3])


def in_thread(fn, *args):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", fn(*args)), daemon=True)
    t.start()
    return t, out


# ---------------------------------------------------------------- scenarios
def sc_sg_rules(s, codes, notes):
    r = call(s, "CreateSecurityGroup", {"GroupName": "big", "GroupDescription": "x"}, codes=codes)
    gid = first(r"<groupId>([^<]+)</groupId>", r[3])
    p = {"GroupId": gid} if gid else {"GroupName": "big"}
    p.update({"IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "1",
              "IpPermissions.1.ToPort": "65535"})
    for n in range(1, 1501):
        p[f"IpPermissions.1.IpRanges.{n}.CidrIp"] = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}/32"
    r = call(s, "AuthorizeSecurityGroupIngress", p, codes=codes)
    notes.append(f"authorize={r[2]:.2f}s({r[0]})")
    r = call(s, "DescribeSecurityGroupRules", {}, codes=codes)
    notes.append(f"describe_rules={r[2]:.2f}s({r[0]},{len(r[3]) / MIB:.1f}MiB)")


def sc_phantom(s, codes, notes):
    for _ in range(20):
        call(s, "AuthorizeSecurityGroupIngress", {
            "GroupName": "default", "IpPermissions.1.IpProtocol": "tcp",
            "IpPermissions.1.FromPort": "22", "IpPermissions.1.ToPort": "22",
            "IpPermissions.1.Groups.1.UserId": "".join(random.choice(string.digits) for _ in range(12)),
            "IpPermissions.1.Groups.1.GroupName": "default", "DryRun": "true"}, codes=codes)


def tag_filter(values):
    p = {"Filter.1.Name": "tag-value"}
    p.update({f"Filter.1.Value.{i}": v for i, v in enumerate(values, 1)})
    return p


def sc_wildcards(s, codes, notes, setup):
    ami = image_id(s, codes)
    r = call(s, "RunInstances", {"ImageId": ami, "InstanceType": "t2.micro", "MinCount": "50",
                                 "MaxCount": "50", "TagSpecification.1.ResourceType": "instance",
                                 "TagSpecification.1.Tag.1.Key": "name",
                                 "TagSpecification.1.Tag.1.Value": "a" * 250}, codes=codes)
    notes.append(f"launched={len(re.findall('<instanceId>', r[3]))}")
    setup()
    evil = tag_filter(["*a" * 500 + "b"] * 200)
    threads = [in_thread(call, s, "DescribeInstances", evil, ACCOUNT1, None, codes) for _ in range(2)]
    time.sleep(0.2)
    cpu0 = s.cpu()
    r = call(s, "DescribeAvailabilityZones", {}, ACCOUNT2, None, codes)
    notes.append(f"a2_azs={r[2]:.2f}s({r[0]})")
    for n, (t, out) in enumerate(threads):
        t.join()
        notes.append(f"evil{n + 1}={out['r'][2]:.2f}s({out['r'][0]})")
    notes.append(f"cpu_a={s.cpu() - cpu0:.1f}s+")
    cpu0 = s.cpu()
    moderate = [f"*a?b*c*{i}*" if i % 2 else f"*{i}a?b*c*" for i in range(800)]
    r = call(s, "DescribeInstances", tag_filter(moderate), codes=codes)
    notes.append(f"b_800={r[2]:.2f}s({r[0]}) cpu_b={s.cpu() - cpu0:.1f}s")
    # (c) worst case of a last-star backtracking matcher: O(len(value)^2/4) per value
    cpu0 = s.cpu()
    r = call(s, "DescribeInstances", tag_filter(["*" + "a" * 124 + "b"] * 200), codes=codes)
    notes.append(f"c_quadratic={r[2]:.2f}s({r[0]}) cpu_c={s.cpu() - cpu0:.1f}s")


def sc_create_tags(s, codes, notes, setup):
    for n in range(150):
        call(s, "CreateKeyPair", {"KeyName": f"k{n}"}, codes=codes)
    ids = re.findall(r"<keyPairId>([^<]+)</keyPairId>", call(s, "DescribeKeyPairs", {}, codes=codes)[3])
    notes.append(f"keypairs={len(ids)}")
    setup()
    if not ids:
        return
    p = {f"ResourceId.{n + 1}": ids[n % len(ids)] for n in range(20000)}
    p.update({"Tag.1.Key": "k", "Tag.1.Value": "v"})
    t, out = in_thread(call, s, "CreateTags", p, ACCOUNT1, None, codes)
    time.sleep(0.2)
    r = call(s, "CreateKeyPair", {"KeyName": "other"}, ACCOUNT2, None, codes)
    t.join()
    notes.append(f"create_tags={out['r'][2]:.2f}s({out['r'][0]}) a2_keypair={r[2]:.2f}s({r[0]})")
    # Within EC2's limit: 1,000 ids (150 distinct key pairs).
    p = {f"ResourceId.{n + 1}": ids[n % len(ids)] for n in range(1000)}
    p.update({"Tag.1.Key": "k2", "Tag.1.Value": "v"})
    t, out = in_thread(call, s, "CreateTags", p, ACCOUNT1, None, codes)
    time.sleep(0.01)
    r = call(s, "CreateKeyPair", {"KeyName": "other2"}, ACCOUNT2, None, codes)
    t.join()
    notes.append(f"create_tags_1000={out['r'][2]:.2f}s({out['r'][0]}) a2_keypair_during={r[2]:.3f}s({r[0]})")


def sc_churn(s, codes, notes, setup):
    ami = image_id(s, codes)
    setup()
    user_data = base64.b64encode("".join(random.choice(string.ascii_letters) for _ in range(16384)).encode()).decode()
    stats = collections.Counter()
    lock = threading.Lock()
    end = time.time() + 8

    def worker():
        while time.time() < end:
            r = call(s, "RunInstances", {"ImageId": ami, "InstanceType": "t2.micro", "MinCount": "1",
                                         "MaxCount": "1", "UserData": user_data}, codes=codes)
            iid = first(r"<instanceId>([^<]+)</instanceId>", r[3])
            if not iid:
                continue
            t = call(s, "TerminateInstances", {"InstanceId.1": iid}, codes=codes)
            with lock:
                stats["launched"] += 1
                stats["terminated"] += t[0] == 200

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    notes.append(f"launched={stats['launched']} terminated={stats['terminated']}")
    return stats["terminated"]


def sc_slow_bodies(s, codes, notes, setup):
    setup()
    rss0 = s.status("VmRSS")
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
            "X-Amz-Date: 20240101T000000Z\r\nContent-Length: 1048576\r\n\r\n").encode()
    chunk, socks, sent_total, failed = b"a" * 65536, [], 0, 0
    t0 = time.time()
    for _ in range(200):
        try:
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        except OSError:
            failed += 1
            continue
        socks.append(c)
        try:
            c.sendall(head)
            c.settimeout(2)
            left = 1_000_000
            while left > 0:
                n = c.send(chunk[:min(left, len(chunk))])
                left -= n
                sent_total += n
        except OSError:
            failed += 1
    notes.append(f"open_send={time.time() - t0:.1f}s")
    time.sleep(5)
    held = s.status("VmRSS")
    answers = collections.Counter()
    for c in socks:
        try:
            c.setblocking(False)
            data = c.recv(4096)
            answers[data.split(b"\r\n", 1)[0].decode(errors="replace") if data else "closed"] += 1
        except BlockingIOError:
            answers["none"] += 1
        except OSError as e:
            answers["EXC:" + type(e).__name__] += 1
        c.close()
    codes.counter.update(answers)
    time.sleep(1)
    notes.append(f"sent={sent_total / MIB:.0f}MiB send_failures={failed} rss_held={held:.1f}MiB "
                 f"delta_held={held - rss0:+.1f}MiB rss_after_close={s.status('VmRSS'):.1f}MiB")


SCENARIOS = {"sg-rules": sc_sg_rules, "phantom": sc_phantom, "wildcards": sc_wildcards,
             "create-tags": sc_create_tags, "churn": sc_churn, "slow-bodies": sc_slow_bodies}


def run(binary, name):
    s = Server(binary)
    codes, notes = Codes(), []
    try:
        s.start()
        before = {"v": s.snap()}
        def setup():  # re-baseline after a scenario's preparation
            before["v"] = s.snap()
            notes.append(f"setup_hwm={before['v']['hwm']:.1f}MiB")
        fn = SCENARIOS[name]
        result = fn(s, codes, notes, setup) if fn.__code__.co_argcount == 4 else fn(s, codes, notes)
        b, a = before["v"], s.snap()
        if name == "churn" and result:
            notes.append(f"MiB_per_1000_terminated={(a['rss'] - b['rss']) / result * 1000:.2f}")
        alive = "alive" if s.proc.poll() is None else f"EXITED({s.proc.returncode})"
        print(f"[{name}] wall={a['t'] - b['t']:.2f}s cpu={a['cpu'] - b['cpu']:.2f}s "
              f"rss={b['rss']:.1f}->{a['rss']:.1f}MiB (delta {a['rss'] - b['rss']:+.1f}) peak_hwm={a['hwm']:.1f}MiB "
              f"disk={b['disk']:.2f}->{a['disk']:.2f}MiB (delta {a['disk'] - b['disk']:+.2f}) "
              f"server={alive} codes={codes} {' '.join(notes)}", flush=True)
    except Exception as e:  # report and go on with the next scenario
        print(f"[{name}] FAILED {type(e).__name__}: {e} codes={codes} {' '.join(notes)}", flush=True)
    finally:
        s.stop()


def main():
    global TIMEOUT, RAISE_LIMITS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--scenario", action="append", choices=list(SCENARIOS),
                    help="repeatable; default: all")
    ap.add_argument("--timeout", type=float, default=TIMEOUT, help="per-request client timeout (s)")
    ap.add_argument("--raise-limits", action="store_true",
                    help="lift the rule limit, fleet share and rate limits (new binaries only)")
    args = ap.parse_args()
    TIMEOUT = args.timeout
    RAISE_LIMITS = args.raise_limits
    print(f"# binary={os.path.abspath(args.binary)} cpus={os.cpu_count()} timeout={TIMEOUT}s "
          f"raise_limits={RAISE_LIMITS}", flush=True)
    for name in args.scenario or SCENARIOS:
        run(args.binary, name)


if __name__ == "__main__":
    main()
