"""A VPC network built with boto3's resource API and waiters (the steps of
aws_vpc_network.sh): subnets, an internet gateway, route tables, a NAT
gateway, an instance in each subnet, a second network interface with an
Elastic IP (waiter `network_interface_available`), a baked image, then a
teardown in EC2's order that leaves nothing behind."""
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = os.environ["EC2_GATEWAY_ENDPOINT"]
config = Config(retries={"max_attempts": 1})
ec2 = boto3.resource("ec2", endpoint_url=endpoint, region_name="us-east-1", config=config)
client = ec2.meta.client
waiter_config = {"Delay": 1, "MaxAttempts": 30}


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def error_code(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as error:
        return error.response["Error"]["Code"]
    return None


vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "boto3"}]}])
vpc.wait_until_available(WaiterConfig=waiter_config)
vpc.reload()
check("VPC available", vpc.state == "available" and vpc.cidr_block == "10.20.0.0/16", vpc.state)

public = vpc.create_subnet(CidrBlock="10.20.0.0/24", AvailabilityZone="us-east-1a")
private = vpc.create_subnet(CidrBlock="10.20.1.0/24", AvailabilityZone="us-east-1c")
client.get_waiter("subnet_available").wait(SubnetIds=[public.id, private.id], WaiterConfig=waiter_config)
check("subnets", sorted(s.id for s in vpc.subnets.all()) == sorted([public.id, private.id]))
check("subnet outside the VPC", error_code(vpc.create_subnet, CidrBlock="10.21.0.0/24") == "InvalidSubnet.Range")

igw = ec2.create_internet_gateway()
vpc.attach_internet_gateway(InternetGatewayId=igw.id)
igw.reload()
check("gateway attached", igw.attachments == [{"State": "available", "VpcId": vpc.id}], igw.attachments)
spare = ec2.create_internet_gateway()
check("a second gateway is refused", error_code(spare.attach_to_vpc, VpcId=vpc.id) == "Resource.AlreadyAssociated")

public_table = vpc.create_route_table()
public_table.create_route(DestinationCidrBlock="0.0.0.0/0", GatewayId=igw.id)
association = public_table.associate_with_subnet(SubnetId=public.id)
public_table.reload()
check("public routes", [(r.destination_cidr_block, r.state) for r in public_table.routes] == [("10.20.0.0/16", "active"), ("0.0.0.0/0", "active")], public_table.routes_attribute)

allocation = client.allocate_address(Domain="vpc")
nat = client.create_nat_gateway(SubnetId=public.id, AllocationId=allocation["AllocationId"], ClientToken="boto3-nat")["NatGateway"]
check("NAT gateway pending", nat["State"] == "pending", nat["State"])
again = client.create_nat_gateway(SubnetId=public.id, AllocationId=allocation["AllocationId"], ClientToken="boto3-nat")["NatGateway"]
check("ClientToken retry answers the same NAT gateway", again["NatGatewayId"] == nat["NatGatewayId"])
client.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat["NatGatewayId"]], WaiterConfig=waiter_config)
main_table = next(t for t in vpc.route_tables.all() if any(a.main for a in t.associations))
main_table.create_route(DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat["NatGatewayId"])

web, = ec2.create_instances(ImageId="ami-0b1c2d3e4f5a6b7c8", InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=public.id)
worker, = ec2.create_instances(ImageId="ami-0b1c2d3e4f5a6b7c8", InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=private.id)
web.wait_until_running(WaiterConfig=waiter_config)
worker.wait_until_running(WaiterConfig=waiter_config)
web.reload()
worker.reload()
check("web in its subnet", web.subnet_id == public.id and web.vpc_id == vpc.id and web.private_ip_address.startswith("10.20.0."), web.private_ip_address)
check("worker in its subnet", worker.subnet_id == private.id and worker.placement["AvailabilityZone"] == "us-east-1c", worker.placement)
check("instances listed by VPC", sorted(i.id for i in vpc.instances.all()) == sorted([web.id, worker.id]))
check("web's primary interface", [n.id for n in web.network_interfaces] == ["eni-" + web.id[2:]], web.network_interfaces_attribute)

# A second interface for the web instance, with an Elastic IP of its own.
eni = public.create_network_interface(Description="web public", SecondaryPrivateIpAddressCount=1)
client.get_waiter("network_interface_available").wait(NetworkInterfaceIds=[eni.id], WaiterConfig=waiter_config)
check("interface holds two addresses of its subnet", len(eni.private_ip_addresses) == 2 and all(a["PrivateIpAddress"].startswith("10.20.0.") for a in eni.private_ip_addresses), eni.private_ip_addresses)
attachment_id = eni.attach(InstanceId=web.id, DeviceIndex=1)["AttachmentId"]
eni.reload()
check("interface attached", eni.status == "in-use" and eni.attachment["InstanceId"] == web.id and eni.attachment["AttachmentId"] == attachment_id, eni.attachment)
eni_address = client.allocate_address(Domain="vpc")
eni_association = client.associate_address(AllocationId=eni_address["AllocationId"], NetworkInterfaceId=eni.id, PrivateIpAddress=eni.private_ip_address)["AssociationId"]
eni.reload()
check("interface shows its Elastic IP", eni.association_attribute["PublicIp"] == eni_address["PublicIp"], eni.association_attribute)
web.reload()
check("web shows two interfaces", sorted(n["Attachment"]["DeviceIndex"] for n in web.network_interfaces_attribute) == [0, 1], web.network_interfaces_attribute)
check("an attached interface is not deleted", error_code(client.delete_network_interface, NetworkInterfaceId=eni.id) == "InvalidNetworkInterface.InUse")
client.disassociate_address(AssociationId=eni_association)
eni.detach()
client.get_waiter("network_interface_available").wait(NetworkInterfaceIds=[eni.id], WaiterConfig=waiter_config)
eni.delete()
client.release_address(AllocationId=eni_address["AllocationId"])
check("interface gone", error_code(client.describe_network_interfaces, NetworkInterfaceIds=[eni.id]) == "InvalidNetworkInterfaceID.NotFound")

image = web.create_image(Name="boto3-baked", NoReboot=True)
client.get_waiter("image_available").wait(ImageIds=[image.id], WaiterConfig=waiter_config)
image.reload()
check("baked image available", image.state == "available" and image.owner_id == vpc.owner_id, (image.state, image.owner_id))
baked, = ec2.create_instances(ImageId=image.id, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=private.id)
baked.wait_until_running(WaiterConfig=waiter_config)
check("launched from the baked image", baked.image_id == image.id)

for instance in (web, worker, baked):
    instance.terminate()
for instance in (web, worker, baked):
    instance.wait_until_terminated(WaiterConfig=waiter_config)
image.deregister()
client.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
client.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[nat["NatGatewayId"]], WaiterConfig=waiter_config)
client.delete_route(RouteTableId=main_table.id, DestinationCidrBlock="0.0.0.0/0")
client.release_address(AllocationId=allocation["AllocationId"])
association.delete()
public_table.delete()
vpc.detach_internet_gateway(InternetGatewayId=igw.id)
igw.delete()
spare.delete()
check("no gateway attached to it", not list(ec2.internet_gateways.filter(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc.id]}])))
public.delete()
private.delete()
vpc.delete()
check("VPC gone", error_code(client.describe_vpcs, VpcIds=[vpc.id]) == "InvalidVpcID.NotFound")
check("nothing left in it", not list(ec2.subnets.filter(Filters=[{"Name": "vpc-id", "Values": [vpc.id]}])) and not list(ec2.route_tables.filter(Filters=[{"Name": "vpc-id", "Values": [vpc.id]}])))
print("all checks passed")
