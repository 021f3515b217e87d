#!/usr/bin/env python3
"""Kill -9 a gateway under concurrent writes; every answered write must survive.

  python3 tests/tools/crash_check.py --binary target/release/ec2-gateway [--rounds 3]

Each round: start the gateway on sled (a fresh data folder the first round,
the same one after), run 8 threads of CreateKeyPair / RunInstances /
CreateTags for a random 1-3 s, SIGKILL the server while requests are in
flight, restart it on the same folder, and check that every write that was
answered 200 is there. Prints one line per round; exits non-zero on a loss.
"""
import argparse, os, random, signal, subprocess, sys, tempfile, threading, time
import boto3
from botocore.config import Config

KEY, SECRET = "AKIAUSEREXAMPLE00001", "userSecretKeyExample00000000000000000000"
CONFIG = """listen = "127.0.0.1:0"
operator_listen = "127.0.0.1:0"
data_dir = "{data}"
storage = "sled"
[[accounts]]
id = "444455556666"
name = "alice"
access_key_id = "{key}"
secret_access_key = "{secret}"
[quotas]
max_instances = 100000
max_vcpus = 1000000
max_fleet_share_percent = 100
[rate_limits]
enabled = false
[lifecycle]
boot_delay_secs = 0
"""


def start(binary, folder, port):
    config = os.path.join(folder, "config.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(data=os.path.join(folder, "data"), key=KEY, secret=SECRET))
    env = dict(os.environ, EC2_GATEWAY_LISTEN=f"127.0.0.1:{port}", EC2_GATEWAY_LOG="error")
    proc = subprocess.Popen([binary, "serve", "--config", config], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                       aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                       config=Config(retries={"max_attempts": 1}, read_timeout=10, connect_timeout=2))
    for _ in range(200):
        try:
            ec2.describe_regions()
            return proc, ec2
        except Exception:
            time.sleep(0.05)
    raise RuntimeError("the gateway did not start")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="ec2gw-crash-")
    answered = {"keys": set(), "instances": set(), "tags": set()}
    lock = threading.Lock()
    for round_ in range(args.rounds):
        port = random.randint(20000, 40000)
        proc, ec2 = start(args.binary, folder, port)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        stop = threading.Event()

        def writer(n):
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    kind = i % 3
                    if kind == 0:
                        name = f"r{round_}-t{n}-{i}"
                        ec2.create_key_pair(KeyName=name)
                        with lock:
                            answered["keys"].add(name)
                    elif kind == 1:
                        ids = [x["InstanceId"] for x in ec2.run_instances(
                            ImageId=image, MinCount=1, MaxCount=1)["Instances"]]
                        with lock:
                            answered["instances"].update(ids)
                    else:
                        with lock:
                            target = next(iter(answered["instances"]), None)
                        if target:
                            value = f"r{round_}-t{n}-{i}"
                            ec2.create_tags(Resources=[target], Tags=[{"Key": f"k{n}", "Value": value}])
                            with lock:
                                answered["tags"].add((target, f"k{n}", value))
                except Exception:
                    pass  # unanswered (or refused): makes no promise

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(1, 3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
        # The last tag per (instance, key) is what must remain; keep only those.
        latest = {}
        for target, key, value in sorted(answered["tags"], key=lambda t: (t[2].split("-")[0], int(t[2].split("-")[-1]))):
            latest[(target, key)] = value
        proc, ec2 = start(args.binary, folder, random.randint(20000, 40000))
        keys = {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
        instances = {i["InstanceId"]: i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
        lost_keys = answered["keys"] - keys
        lost_instances = answered["instances"] - set(instances)
        # The stored value must be the last answered one, or a later write of
        # the same thread whose answer the kill cut off (it may have committed).
        def order(value):
            return int(value.split("-")[-1])

        def kept(target, key, value):
            stored = {t["Key"]: t["Value"] for t in instances.get(target, {}).get("Tags", [])}
            return key in stored and order(stored[key]) >= order(value)

        tags_present = sum(1 for (target, key), value in latest.items() if kept(target, key, value))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"round {round_ + 1}: answered {len(answered['keys'])} key pairs, {len(answered['instances'])} "
              f"instances, {len(answered['tags'])} tag writes; lost {len(lost_keys)} key pairs, "
              f"{len(lost_instances)} instances; tags present {tags_present}/{len(latest)} (last per key)",
              flush=True)
        if lost_keys or lost_instances or tags_present != len(latest):
            sys.exit(1)
        answered["tags"] = set()


if __name__ == "__main__":
    main()
