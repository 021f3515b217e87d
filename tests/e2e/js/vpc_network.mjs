// Part of the VPC flow with the AWS SDK for JavaScript v3 against
// ec2-gateway: a VPC, a subnet, an internet gateway and a route table, a
// launch template, an instance launched from it into the subnet (with the
// SDK's waiters), then a teardown in EC2's order that leaves nothing.
// Needs EC2_GATEWAY_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
import {
  EC2Client,
  CreateVpcCommand, DeleteVpcCommand, DescribeVpcsCommand,
  CreateSubnetCommand, DeleteSubnetCommand, DescribeSubnetsCommand,
  CreateInternetGatewayCommand, AttachInternetGatewayCommand,
  DetachInternetGatewayCommand, DeleteInternetGatewayCommand,
  CreateRouteTableCommand, CreateRouteCommand, AssociateRouteTableCommand,
  DisassociateRouteTableCommand, DeleteRouteTableCommand, DescribeRouteTablesCommand,
  CreateLaunchTemplateCommand, DeleteLaunchTemplateCommand,
  RunInstancesCommand, DescribeInstancesCommand, TerminateInstancesCommand,
  waitUntilVpcAvailable, waitUntilSubnetAvailable,
  waitUntilInstanceRunning, waitUntilInstanceTerminated,
} from "@aws-sdk/client-ec2";

const ec2 = new EC2Client({
  endpoint: process.env.EC2_GATEWAY_ENDPOINT,
  region: "us-east-1",
  maxAttempts: 1,
});
const waiter = { client: ec2, maxWaitTime: 60, minDelay: 1, maxDelay: 2 };

function check(name, condition, detail = "") {
  if (!condition) {
    console.log(`FAIL ${name}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok   ${name}`);
}

async function errorCode(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return error.name;
  }
}

const { Vpc } = await ec2.send(new CreateVpcCommand({
  CidrBlock: "10.30.0.0/16",
  TagSpecifications: [{ ResourceType: "vpc", Tags: [{ Key: "Name", Value: "js" }] }],
}));
check("VPC", /^vpc-[0-9a-f]{17}$/.test(Vpc.VpcId), Vpc);
await waitUntilVpcAvailable(waiter, { VpcIds: [Vpc.VpcId] });

const { Subnet } = await ec2.send(new CreateSubnetCommand({
  VpcId: Vpc.VpcId, CidrBlock: "10.30.1.0/24", AvailabilityZone: "us-east-1b",
}));
await waitUntilSubnetAvailable(waiter, { SubnetIds: [Subnet.SubnetId] });
check("subnet with EC2's reserved addresses", Subnet.AvailableIpAddressCount === 251, Subnet);
check("overlap refused",
  (await errorCode(ec2.send(new CreateSubnetCommand({ VpcId: Vpc.VpcId, CidrBlock: "10.30.1.0/25" })))) === "InvalidSubnet.Conflict");

const { InternetGateway } = await ec2.send(new CreateInternetGatewayCommand({}));
await ec2.send(new AttachInternetGatewayCommand({
  InternetGatewayId: InternetGateway.InternetGatewayId, VpcId: Vpc.VpcId,
}));
const { RouteTable } = await ec2.send(new CreateRouteTableCommand({ VpcId: Vpc.VpcId }));
await ec2.send(new CreateRouteCommand({
  RouteTableId: RouteTable.RouteTableId, DestinationCidrBlock: "0.0.0.0/0",
  GatewayId: InternetGateway.InternetGatewayId,
}));
const { AssociationId } = await ec2.send(new AssociateRouteTableCommand({
  RouteTableId: RouteTable.RouteTableId, SubnetId: Subnet.SubnetId,
}));
const routes = (await ec2.send(new DescribeRouteTablesCommand({
  RouteTableIds: [RouteTable.RouteTableId],
}))).RouteTables[0].Routes;
check("default route active",
  routes.some((r) => r.DestinationCidrBlock === "0.0.0.0/0" && r.State === "active"), routes);

const { LaunchTemplate } = await ec2.send(new CreateLaunchTemplateCommand({
  LaunchTemplateName: "js-web",
  LaunchTemplateData: {
    ImageId: "ami-0b1c2d3e4f5a6b7c8",
    InstanceType: "t3.micro",
    NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: Subnet.SubnetId }],
    TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "role", Value: "web" }] }],
  },
}));
check("launch template", /^lt-[0-9a-f]{17}$/.test(LaunchTemplate.LaunchTemplateId), LaunchTemplate);
const launched = await ec2.send(new RunInstancesCommand({
  MinCount: 1, MaxCount: 1,
  LaunchTemplate: { LaunchTemplateName: "js-web", Version: "$Latest" },
}));
const instanceId = launched.Instances[0].InstanceId;
await waitUntilInstanceRunning(waiter, { InstanceIds: [instanceId] });
const instance = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })))
  .Reservations[0].Instances[0];
check("instance from the template in the subnet",
  instance.SubnetId === Subnet.SubnetId && instance.VpcId === Vpc.VpcId
    && instance.PrivateIpAddress.startsWith("10.30.1.")
    && instance.Tags.some((t) => t.Key === "role" && t.Value === "web"), instance);

await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
await waitUntilInstanceTerminated(waiter, { InstanceIds: [instanceId] });
await ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: LaunchTemplate.LaunchTemplateId }));
await ec2.send(new DisassociateRouteTableCommand({ AssociationId }));
await ec2.send(new DeleteRouteTableCommand({ RouteTableId: RouteTable.RouteTableId }));
await ec2.send(new DetachInternetGatewayCommand({
  InternetGatewayId: InternetGateway.InternetGatewayId, VpcId: Vpc.VpcId,
}));
await ec2.send(new DeleteInternetGatewayCommand({ InternetGatewayId: InternetGateway.InternetGatewayId }));
await ec2.send(new DeleteSubnetCommand({ SubnetId: Subnet.SubnetId }));
await ec2.send(new DeleteVpcCommand({ VpcId: Vpc.VpcId }));
check("VPC gone",
  (await errorCode(ec2.send(new DescribeVpcsCommand({ VpcIds: [Vpc.VpcId] })))) === "InvalidVpcID.NotFound");
const left = await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [Vpc.VpcId] }] }));
check("no subnet left", left.Subnets.length === 0, left);
console.log("all checks passed");
