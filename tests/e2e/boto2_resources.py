"""boto 2 over SigV2: security groups (flat rule parameters), volumes, addresses."""
import os
import sys
import time

from boto.ec2.connection import EC2Connection
from boto.ec2.regioninfo import RegionInfo
from boto.exception import EC2ResponseError

ENDPOINT = os.environ["EC2_GATEWAY_ENDPOINT"]


class SigV2Connection(EC2Connection):
    def _required_auth_capability(self):
        return ["sign-v2"]


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def error_code(call):
    try:
        call()
    except EC2ResponseError as error:
        return error.error_code
    return None


conn = SigV2Connection(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], is_secure=False,
                       region=RegionInfo(name="us-east-1", endpoint="127.0.0.1"), port=int(ENDPOINT.rsplit(":", 1)[1]), path="/")

# Security groups with the flat legacy parameters.
web = conn.create_security_group("boto2-web", "web tier")
db = conn.create_security_group("boto2-db", "db tier")
check("groups created", web.id.startswith("sg-") and db.id.startswith("sg-"))
check("authorize cidr", conn.authorize_security_group(group_name="boto2-web", ip_protocol="tcp", from_port=80, to_port=80, cidr_ip="0.0.0.0/0"))
check("authorize source group", conn.authorize_security_group(group_name="boto2-db", src_security_group_name="boto2-web", ip_protocol="tcp", from_port=5432, to_port=5432))
check("duplicate", error_code(lambda: conn.authorize_security_group(group_name="boto2-web", ip_protocol="tcp", from_port=80, to_port=80, cidr_ip="0.0.0.0/0")) == "InvalidPermission.Duplicate")
groups = {g.name: g for g in conn.get_all_security_groups()}
check("listed", set(groups) == {"default", "boto2-web", "boto2-db"}, list(groups))
web_rules = [(r.ip_protocol, r.from_port, r.to_port, [g.cidr_ip for g in r.grants]) for r in groups["boto2-web"].rules]
check("web rules", web_rules == [("tcp", "80", "80", ["0.0.0.0/0"])], web_rules)
db_grants = [g.group_id for r in groups["boto2-db"].rules for g in r.grants]
check("db rule references web", db_grants == [web.id], db_grants)
check("filtered", [g.name for g in conn.get_all_security_groups(filters={"group-name": "boto2-w*"})] == ["boto2-web"])
check("in use", error_code(lambda: conn.delete_security_group(group_id=web.id)) == "DependencyViolation")
check("revoke", conn.revoke_security_group(group_name="boto2-db", src_security_group_name="boto2-web", ip_protocol="tcp", from_port=5432, to_port=5432))
check("revoke missing", error_code(lambda: conn.revoke_security_group(group_name="boto2-web", ip_protocol="tcp", from_port=81, to_port=81, cidr_ip="0.0.0.0/0")) == "InvalidPermission.NotFound")

# An instance to attach things to.
reservation = conn.run_instances("ami-0b1c2d3e4f5a6b7c8", instance_type="t3.micro", placement="us-east-1a", security_groups=["boto2-web"])
instance = reservation.instances[0]
for _ in range(50):
    instance.update()
    if instance.state == "running":
        break
    time.sleep(0.1)
check("instance running", instance.state == "running", instance.state)

# Volumes and snapshots.
volume = conn.create_volume(8, "us-east-1a", volume_type="gp2")
check("volume", volume.id.startswith("vol-") and volume.size == 8 and volume.zone == "us-east-1a", (volume.id, volume.size, volume.zone))
for _ in range(50):
    volume.update()
    if volume.status == "available":
        break
    time.sleep(0.1)
check("available", volume.status == "available", volume.status)
conn.attach_volume(volume.id, instance.id, "/dev/sdf")
volume.update()
check("in use", volume.status == "in-use" and volume.attach_data.instance_id == instance.id, (volume.status, volume.attach_data.instance_id))
snapshot = conn.create_snapshot(volume.id, "boto2 snapshot")
check("snapshot", snapshot.id.startswith("snap-") and snapshot.volume_id == volume.id)
check("listed snapshot", [s.id for s in conn.get_all_snapshots(owner="self")] == [snapshot.id])
check("volume in use", error_code(lambda: conn.delete_volume(volume.id)) == "VolumeInUse")
check("detach", conn.detach_volume(volume.id, force=True))
for _ in range(50):
    volume.update()
    if volume.status == "available":
        break
    time.sleep(0.1)
check("detached", volume.status == "available", volume.status)
check("delete snapshot", conn.delete_snapshot(snapshot.id))
check("delete volume", conn.delete_volume(volume.id))

# Elastic IPs.
address = conn.allocate_address(domain="vpc")
check("allocated", address.allocation_id.startswith("eipalloc-"), address.allocation_id)
check("associated", conn.associate_address(instance_id=instance.id, allocation_id=address.allocation_id))
listed = conn.get_all_addresses(allocation_ids=[address.allocation_id])[0]
check("listed address", listed.instance_id == instance.id and listed.public_ip == address.public_ip, (listed.instance_id, listed.public_ip))
instance.update()
check("instance public ip", instance.ip_address == address.public_ip, instance.ip_address)
check("in use", error_code(lambda: conn.release_address(allocation_id=address.allocation_id)) == "InvalidIPAddress.InUse")
check("disassociate", conn.disassociate_address(association_id=listed.association_id))
check("release", conn.release_address(allocation_id=address.allocation_id))

conn.terminate_instances([instance.id])
print("boto2 resources: all checks passed")
