"""The EC2 getting-started flow with boto3 (same steps as aws_getting_started.sh)."""
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ec2 = boto3.client("ec2", endpoint_url=os.environ["EC2_GATEWAY_ENDPOINT"], region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
waiter_config = {"Delay": 1, "MaxAttempts": 30}


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
group = ec2.create_security_group(GroupName="boto3-start", Description="SSH", VpcId=vpc)["GroupId"]
rules = ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.0/24", "Description": "office"}]}])
check("SSH rule", rules["Return"] and rules["SecurityGroupRules"][0]["FromPort"] == 22, rules)
try:
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}])
    check("duplicate rule", False, "accepted")
except ClientError as error:
    check("duplicate rule", error.response["Error"]["Code"] == "InvalidPermission.Duplicate", error.response)
key = ec2.create_key_pair(KeyName="boto3-start")
check("key pair: RSA by default, as in EC2", key["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----"), key["KeyMaterial"][:40])
instance = ec2.run_instances(ImageId="ami-0b1c2d3e4f5a6b7c8", InstanceType="t3.micro", MinCount=1, MaxCount=1, KeyName="boto3-start", SecurityGroupIds=[group], Placement={"AvailabilityZone": "us-east-1b"})["Instances"][0]["InstanceId"]
ec2.get_waiter("instance_running").wait(InstanceIds=[instance], WaiterConfig=waiter_config)
ec2.create_tags(Resources=[instance], Tags=[{"Key": "Name", "Value": "boto3-start"}])
described = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["boto3-*"]}])["Reservations"][0]["Instances"][0]
check("tagged", described["InstanceId"] == instance and described["SecurityGroups"][0]["GroupId"] == group, described)
allocation = ec2.allocate_address(Domain="vpc")
association = ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=instance)["AssociationId"]
described = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
check("public IP", described.get("PublicIpAddress") == allocation["PublicIp"], described.get("PublicIpAddress"))
volume = ec2.create_volume(AvailabilityZone="us-east-1b", Size=10, VolumeType="gp3", TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "data"}]}])["VolumeId"]
ec2.get_waiter("volume_available").wait(VolumeIds=[volume], WaiterConfig=waiter_config)
attachment = ec2.attach_volume(VolumeId=volume, InstanceId=instance, Device="/dev/sdf")
check("attach", attachment["Device"] == "/dev/sdf" and attachment["State"] in ("attaching", "attached"), attachment)
ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume], WaiterConfig=waiter_config)
mapping = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]
by_device = {m["DeviceName"]: m["Ebs"] for m in mapping}
check("block device mapping: the root volume and the data volume",
      sorted(by_device) == ["/dev/sdf", "/dev/xvda"] and by_device["/dev/sdf"]["VolumeId"] == volume
      and by_device["/dev/xvda"]["DeleteOnTermination"] and not by_device["/dev/sdf"]["DeleteOnTermination"], mapping)
snapshot = ec2.create_snapshot(VolumeId=volume, Description="boto3")["SnapshotId"]
ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot], WaiterConfig=waiter_config)
check("snapshot", ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["State"] == "completed")
try:
    ec2.delete_volume(VolumeId=volume)
    check("in-use volume", False, "deleted")
except ClientError as error:
    check("in-use volume", error.response["Error"]["Code"] == "VolumeInUse")

ec2.delete_snapshot(SnapshotId=snapshot)
ec2.detach_volume(VolumeId=volume)
ec2.get_waiter("volume_available").wait(VolumeIds=[volume], WaiterConfig=waiter_config)
ec2.delete_volume(VolumeId=volume)
ec2.disassociate_address(AssociationId=association)
ec2.release_address(AllocationId=allocation["AllocationId"])
ec2.terminate_instances(InstanceIds=[instance])
ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance], WaiterConfig=waiter_config)
ec2.delete_key_pair(KeyName="boto3-start")
ec2.delete_security_group(GroupId=group)
check("cleaned up", not ec2.describe_volumes()["Volumes"] and not ec2.describe_addresses()["Addresses"])
print("boto3 getting-started: all checks passed")
