#!/usr/bin/env python3
"""Writes a data folder with every kind of resource, for upgrade tests.

The store-contract rewrite must open a data folder written by the release
before it and serve every resource as before. This script makes that
folder with a given release binary, through the real API (boto3):

  python3 tests/tools/make_upgrade_fixture.py --binary target/release/ec2-gateway \
      --out fixtures/upgrade/pre-store-contract

It writes `<out>/data/` (the sled store) and `<out>/manifest.json`: the
release that wrote it and when (open it with the clock set to that time:
terminated instances are purged an hour later), the account keys, and every
resource id with what DescribeX answered for it (states, tags, attachments),
so a test can compare what a newer gateway serves from the same folder.
Instances are left running, stopped and terminated (with 0-second delays),
and one pending (started again with a 10-hour boot delay).
"""
import argparse, base64, json, os, shutil, signal, socket, subprocess, sys, tempfile, time

import boto3
from botocore.config import Config

USER = ("AKIAUSEREXAMPLE00001", "userSecretKeyExample00000000000000000000", "444455556666")
ADMIN = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "111122223333")

CONFIG = """listen = "127.0.0.1:0"
operator_listen = "127.0.0.1:0"
data_dir = "{data}"
region = "us-east-1"
storage = "sled"

[[accounts]]
id = "{admin_id}"
name = "operator"
admin = true
access_key_id = "{admin_key}"
secret_access_key = "{admin_secret}"

[[accounts]]
id = "{user_id}"
name = "alice"
access_key_id = "{user_key}"
secret_access_key = "{user_secret}"

[[hosts]]
name = "node-a1"
availability_zone = "us-east-1a"
vcpus = 32
memory_mib = 131072

[[hosts]]
name = "node-b1"
availability_zone = "us-east-1b"
vcpus = 32
memory_mib = 131072

[lifecycle]
boot_delay_secs = {boot}
stop_delay_secs = 0
terminate_delay_secs = 0
volume_delay_secs = 0
snapshot_delay_secs = 0
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    def __init__(self, binary, folder, boot):
        self.folder = folder
        self.port = free_port()
        config = os.path.join(folder, "config.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(data=os.path.join(folder, "data"), boot=boot,
                                  admin_id=ADMIN[2], admin_key=ADMIN[0], admin_secret=ADMIN[1],
                                  user_id=USER[2], user_key=USER[0], user_secret=USER[1]))
        env = dict(os.environ, EC2_GATEWAY_LISTEN=f"127.0.0.1:{self.port}", EC2_GATEWAY_LOG="warn")
        self.proc = subprocess.Popen([binary, "serve", "--config", config], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ec2 = client(self.port, USER)
        for _ in range(100):
            try:
                self.ec2.describe_regions()
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("the gateway did not answer")

    def stop(self):
        os.kill(self.proc.pid, signal.SIGTERM)
        if self.proc.wait(timeout=30) != 0:
            raise RuntimeError(f"the gateway exited with {self.proc.returncode}")


def client(port, who):
    return boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=who[0], aws_secret_access_key=who[1],
                        config=Config(retries={"max_attempts": 1}))


def wait(ec2, waiter, **kwargs):
    ec2.get_waiter(waiter).wait(WaiterConfig={"Delay": 1, "MaxAttempts": 30}, **kwargs)


def populate(ec2):
    tag = lambda kind, name: [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": name}]}]
    ec2.create_key_pair(KeyName="fixture-ed25519", KeyType="ed25519", TagSpecifications=tag("key-pair", "k1"))
    ec2.create_key_pair(KeyName="fixture-rsa", KeyType="rsa")
    image = ec2.register_image(
        Name="fixture-image", Description="registered by the upgrade fixture", RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}],
        TagSpecifications=tag("image", "image"))["ImageId"]
    web = ec2.create_security_group(GroupName="web", Description="web tier",
                                    TagSpecifications=tag("security-group", "web"))["GroupId"]
    db = ec2.create_security_group(GroupName="db", Description="db tier")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "https"}]}])
    ec2.authorize_security_group_ingress(GroupId=db, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": web}]}])
    public = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    run = lambda count, zone, name, token: [i["InstanceId"] for i in ec2.run_instances(
        ImageId=public, InstanceType="t3.micro", MinCount=count, MaxCount=count, KeyName="fixture-ed25519",
        SecurityGroupIds=[web], Placement={"AvailabilityZone": zone}, ClientToken=token,
        UserData=base64.b64encode(b"#!/bin/sh\necho fixture\n").decode(),
        TagSpecifications=tag("instance", name))["Instances"]]
    running = run(2, "us-east-1a", "running", "fixture-token-running")
    stopped = run(1, "us-east-1b", "stopped", "fixture-token-stopped")
    terminated = run(1, "us-east-1a", "terminated", "fixture-token-terminated")
    wait(ec2, "instance_running", InstanceIds=running + stopped + terminated)
    ec2.stop_instances(InstanceIds=stopped)
    wait(ec2, "instance_stopped", InstanceIds=stopped)
    ec2.terminate_instances(InstanceIds=terminated)
    wait(ec2, "instance_terminated", InstanceIds=terminated)
    attached = ec2.create_volume(AvailabilityZone="us-east-1a", Size=10, VolumeType="gp3",
                                 TagSpecifications=tag("volume", "data"))["VolumeId"]
    spare = ec2.create_volume(AvailabilityZone="us-east-1b", Size=5)["VolumeId"]
    wait(ec2, "volume_available", VolumeIds=[attached, spare])
    ec2.attach_volume(VolumeId=attached, InstanceId=running[0], Device="/dev/sdf")
    wait(ec2, "volume_in_use", VolumeIds=[attached])
    snapshot = ec2.create_snapshot(VolumeId=attached, Description="fixture snapshot",
                                   TagSpecifications=tag("snapshot", "snap"))["SnapshotId"]
    wait(ec2, "snapshot_completed", SnapshotIds=[snapshot])
    associated = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=associated, InstanceId=running[1])
    loose = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.create_tags(Resources=[loose, spare], Tags=[{"Key": "team", "Value": "blue"}])
    return {"image": image, "groups": [web, db], "running": running, "stopped": stopped,
            "terminated": terminated, "volumes": [attached, spare], "snapshot": snapshot,
            "addresses": [associated, loose]}


def described(ec2):
    """What the gateway serves, without request ids and times that change."""
    strip = lambda value: json.loads(json.dumps(value, default=str))
    return {
        "instances": strip(ec2.describe_instances()["Reservations"]),
        "security_groups": strip(ec2.describe_security_groups()["SecurityGroups"]),
        "key_pairs": strip(ec2.describe_key_pairs()["KeyPairs"]),
        "images": strip(ec2.describe_images(Owners=["self"])["Images"]),
        "volumes": strip(ec2.describe_volumes()["Volumes"]),
        "snapshots": strip(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]),
        "addresses": strip(ec2.describe_addresses()["Addresses"]),
        "tags": strip(ec2.describe_tags()["Tags"]),
        "vpcs": strip(ec2.describe_vpcs()["Vpcs"]),
        "subnets": strip(ec2.describe_subnets()["Subnets"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    version = subprocess.run([args.binary, "--version"], capture_output=True, text=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="ec2gw-fixture-")
    gateway = Gateway(args.binary, work, boot=0)
    try:
        ids = populate(gateway.ec2)
    finally:
        gateway.stop()
    # A pending instance: its boot is due in ten hours.
    gateway = Gateway(args.binary, work, boot=36000)
    try:
        public = gateway.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ids["pending"] = [gateway.ec2.run_instances(ImageId=public, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]]
        served = described(gateway.ec2)
        # Terminated instances are purged an hour later and ClientTokens a
        # day later: a test opens the folder with its clock set to this time.
        written_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    finally:
        gateway.stop()
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    shutil.copytree(os.path.join(work, "data"), os.path.join(args.out, "data"))
    manifest = {"written_by": version, "written_at": written_at,
                "user": {"access_key_id": USER[0], "account_id": USER[2]},
                "ids": ids, "served": served}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out} ({version}): " + ", ".join(f"{k}={len(v) if isinstance(v, list) else 1}" for k, v in ids.items()))


if __name__ == "__main__":
    main()
