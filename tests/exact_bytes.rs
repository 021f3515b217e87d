//! Every response and error shape, pinned byte for byte (request ids,
//! timestamps and heartbeat ages replaced by placeholders).

mod common;

use common::*;
use ec2_gateway::client::{text_of, Reply};
use ec2_gateway::config::StorageBackend;

/// Replaces the request id, every `YYYY-MM-DDTHH:MM:SS.mmmZ` timestamp,
/// every `(... ago)` age, every generated resource id (`sg-<17 hex>` ->
/// `sg-ID`) and every MAC address (derived from an id) with placeholders.
fn normalized(reply: &Reply) -> String {
    let request_id = reply.headers["x-amzn-requestid"].to_str().unwrap();
    let mut body = reply.body.replace(request_id, "REQUEST-ID");
    // An instance's public address is drawn at launch.
    if let Some(public_ip) = ec2_gateway::client::text_of(&body, "ipAddress") {
        body = body
            .replace(&public_ip, "PUBLIC-IP")
            .replace(&public_ip.replace('.', "-"), "PUBLIC-IP");
    }
    let text = without_macs(&without_ids(&body));
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let is_timestamp = rest.len() >= 24
            && rest.as_bytes()[..24]
                .iter()
                .enumerate()
                .all(|(j, b)| match j {
                    4 | 7 => *b == b'-',
                    10 => *b == b'T',
                    13 | 16 => *b == b':',
                    19 => *b == b'.',
                    23 => *b == b'Z',
                    _ => b.is_ascii_digit(),
                });
        if is_timestamp {
            out.push_str("TIMESTAMP");
            i += 24;
        } else if rest.starts_with('(') && rest.find(" ago)").is_some_and(|end| end < 20) {
            let end = rest.find(" ago)").unwrap();
            out.push_str("(AGE ago)");
            i += end + 5;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `<macAddress>02:..:..:..:..:..</macAddress>` -> `<macAddress>MAC</macAddress>`.
fn without_macs(text: &str) -> String {
    const OPEN: &str = "<macAddress>";
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let end = after.find('<').unwrap_or(after.len());
        let mac = &after[..end];
        assert!(
            mac.len() == 17
                && mac
                    .split(':')
                    .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit())),
            "not a MAC address: {mac}"
        );
        out.push_str(&rest[..start + OPEN.len()]);
        out.push_str("MAC");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `<prefix>-<17 hex digits>` -> `<prefix>-ID`.
fn without_ids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(dash) = rest.find('-') {
        let hex = &rest[dash + 1..];
        let is_id = hex.len() >= 17
            && hex.as_bytes()[..17]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            && hex
                .as_bytes()
                .get(17)
                .is_none_or(|b| !b.is_ascii_alphanumeric());
        out.push_str(&rest[..=dash]);
        if is_id {
            out.push_str("ID");
            rest = &hex[17..];
        } else {
            rest = hex;
        }
    }
    out.push_str(rest);
    out
}

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    (server, dir)
}

#[tokio::test]
async fn describe_availability_zones() {
    let (server, _dir) = server().await;
    let reply = server
        .user("DescribeAvailabilityZones", &[("ZoneName.1", "us-east-1b")])
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeAvailabilityZonesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <availabilityZoneInfo>
        <item>
            <zoneName>us-east-1b</zoneName>
            <zoneState>available</zoneState>
            <optInStatus>opt-in-not-required</optInStatus>
            <messageSet/>
            <regionName>us-east-1</regionName>
            <zoneId>use1-az2</zoneId>
            <groupName>us-east-1-zg-1</groupName>
            <networkBorderGroup>us-east-1</networkBorderGroup>
            <zoneType>availability-zone</zoneType>
        </item>
    </availabilityZoneInfo>
</DescribeAvailabilityZonesResponse>
"#
    );
    let reply = server
        .user(
            "DescribeAvailabilityZones",
            &[("Filter.1.Name", "state"), ("Filter.1.Value.1", "impaired")],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeAvailabilityZonesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <availabilityZoneInfo/>
</DescribeAvailabilityZonesResponse>
"#
    );
    server.stop().await;
}

#[tokio::test]
async fn verbose_zone_tree() {
    let (server, _dir) = server().await;
    server
        .admin(
            "AdminDisableHost",
            &[("HostName", "node-c1"), ("Reason", "fan")],
        )
        .await;
    let reply = server
        .admin(
            "DescribeAvailabilityZones",
            &[
                ("ZoneName.1", "verbose"),
                ("Filter.1.Name", "zone-name"),
                ("Filter.1.Value.1", "us-east-1c"),
            ],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeAvailabilityZonesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <availabilityZoneInfo>
        <item>
            <zoneName>us-east-1c</zoneName>
            <zoneState>unavailable</zoneState>
            <optInStatus>opt-in-not-required</optInStatus>
            <messageSet/>
            <regionName>us-east-1</regionName>
            <zoneId>use1-az3</zoneId>
            <groupName>us-east-1-zg-1</groupName>
            <networkBorderGroup>us-east-1</networkBorderGroup>
            <zoneType>availability-zone</zoneType>
        </item>
        <item>
            <zoneName>|- node-c1</zoneName>
        </item>
        <item>
            <zoneName>| |- compute</zoneName>
            <zoneState>disabled :-) TIMESTAMP (AGE ago) reason: fan</zoneState>
        </item>
    </availabilityZoneInfo>
</DescribeAvailabilityZonesResponse>
"#
    );
    server.stop().await;
}

#[tokio::test]
async fn describe_regions() {
    let (server, _dir) = server().await;
    let reply = server
        .user("DescribeRegions", &[("RegionName.1", "us-west-2")])
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <regionInfo>
        <item>
            <regionName>us-west-2</regionName>
            <regionEndpoint>ec2.us-west-2.example:8773</regionEndpoint>
            <optInStatus>opt-in-not-required</optInStatus>
        </item>
    </regionInfo>
</DescribeRegionsResponse>
"#
    );
    server.stop().await;
}

#[tokio::test]
async fn errors() {
    let (server, _dir) = server().await;
    let reply = server
        .user("DescribeAvailabilityZones", &[("ZoneName.1", "us-east-1z")])
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        normalized(&reply),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>Invalid availability zone: [us-east-1z]</Message></Error></Errors><RequestID>REQUEST-ID</RequestID></Response>\n"
    );
    let reply = server.user("AttachVpnGateway", &[]).await;
    assert_eq!(
        normalized(&reply),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidAction</Code><Message>The action AttachVpnGateway is not valid for this web service.</Message></Error></Errors><RequestID>REQUEST-ID</RequestID></Response>\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_shapes() {
    let (server, _dir) = server().await;
    let reply = server
        .admin("AdminEnableHost", &[("HostName", "node-a1")])
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<AdminEnableHostResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <return>true</return>
</AdminEnableHostResponse>
"#
    );
    let reply = server
        .admin(
            "AdminAddHost",
            &[
                ("HostName", "edge-9"),
                ("AvailabilityZone", "us-east-1a"),
                ("Vcpus", "2"),
                ("MemoryMib", "512"),
                ("Simulated", "false"),
            ],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<AdminAddHostResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <host>
        <hostName>edge-9</hostName>
        <binary>compute</binary>
        <availabilityZone>us-east-1a</availabilityZone>
        <status>enabled</status>
        <alive>false</alive>
        <vcpus>2</vcpus>
        <vcpusUsed>0</vcpusUsed>
        <memoryMib>512</memoryMib>
        <memoryMibUsed>0</memoryMibUsed>
        <simulated>false</simulated>
    </host>
</AdminAddHostResponse>
"#
    );
    let reply = server
        .admin("AdminDescribeAccessKeys", &[("AccountId", USER_ACCOUNT)])
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<AdminDescribeAccessKeysResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <accessKeySet>
        <item>
            <accessKeyId>AKIAUSEREXAMPLE00001</accessKeyId>
            <accountId>444455556666</accountId>
            <userName>alice</userName>
            <status>Active</status>
            <admin>false</admin>
            <createTime>TIMESTAMP</createTime>
        </item>
    </accessKeySet>
</AdminDescribeAccessKeysResponse>
"#
    );
    server.stop().await;
}

#[test]
fn the_schema_check_catches_a_misspelt_element() {
    let good = "<DescribeRegionsResponse xmlns=\"x\"><requestId>1</requestId><regionInfo><item><regionName>a</regionName></item></regionInfo></DescribeRegionsResponse>";
    common::schema::validate("DescribeRegions", good).unwrap();
    for (bad, why) in [
        (good.replace("regionName", "regionNme"), "misspelt member"),
        (
            good.replace("<item>", "<member>")
                .replace("</item>", "</member>"),
            "list items not <item>",
        ),
        (good.replace("<requestId>1</requestId>", ""), "no requestId"),
        (
            good.replace(
                "<regionName>a</regionName>",
                "<regionName><x/></regionName>",
            ),
            "scalar with children",
        ),
        (
            good.replace("DescribeRegionsResponse", "DescribeRegionResponse"),
            "wrong root",
        ),
    ] {
        assert!(
            common::schema::validate("DescribeRegions", &bad).is_err(),
            "{why} passed"
        );
    }
    let zone = "<DescribeAvailabilityZonesResponse><requestId>1</requestId><availabilityZoneInfo><item><messageSet><item><message>m</message></item></messageSet></item></availabilityZoneInfo></DescribeAvailabilityZonesResponse>";
    common::schema::validate("DescribeAvailabilityZones", zone).unwrap();
    let host = "<AdminAddHostResponse><requestId>1</requestId><host><alive>yes</alive></host></AdminAddHostResponse>";
    assert!(
        common::schema::validate("AdminAddHost", host).is_err(),
        "boolean 'yes' passed"
    );
}

#[tokio::test]
async fn resource_shapes() {
    let (server, _dir) = server().await;
    let reply = server
        .user(
            "CreateSecurityGroup",
            &[("GroupName", "web"), ("GroupDescription", "web tier")],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<CreateSecurityGroupResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <groupId>sg-ID</groupId>
    <tagSet/>
    <securityGroupArn>arn:aws:ec2:us-east-1:444455556666:security-group/sg-ID</securityGroupArn>
</CreateSecurityGroupResponse>
"#
    );
    let reply = server
        .user(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupName", "web"),
                ("IpProtocol", "tcp"),
                ("FromPort", "22"),
                ("ToPort", "22"),
                ("CidrIp", "203.0.113.0/24"),
            ],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<AuthorizeSecurityGroupIngressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <return>true</return>
    <securityGroupRuleSet>
        <item>
            <securityGroupRuleId>sgr-ID</securityGroupRuleId>
            <groupId>sg-ID</groupId>
            <groupOwnerId>444455556666</groupOwnerId>
            <isEgress>false</isEgress>
            <ipProtocol>tcp</ipProtocol>
            <fromPort>22</fromPort>
            <toPort>22</toPort>
            <cidrIpv4>203.0.113.0/24</cidrIpv4>
            <tagSet/>
        </item>
    </securityGroupRuleSet>
</AuthorizeSecurityGroupIngressResponse>
"#
    );
    let reply = server
        .user("DescribeSecurityGroups", &[("GroupName.1", "web")])
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <securityGroupInfo>
        <item>
            <ownerId>444455556666</ownerId>
            <groupId>sg-ID</groupId>
            <groupName>web</groupName>
            <groupDescription>web tier</groupDescription>
            <vpcId>vpc-ID</vpcId>
            <securityGroupArn>arn:aws:ec2:us-east-1:444455556666:security-group/sg-ID</securityGroupArn>
            <ipPermissions>
                <item>
                    <ipProtocol>tcp</ipProtocol>
                    <fromPort>22</fromPort>
                    <toPort>22</toPort>
                    <groups/>
                    <ipRanges>
                        <item>
                            <cidrIp>203.0.113.0/24</cidrIp>
                        </item>
                    </ipRanges>
                    <ipv6Ranges/>
                    <prefixListIds/>
                </item>
            </ipPermissions>
            <ipPermissionsEgress>
                <item>
                    <ipProtocol>-1</ipProtocol>
                    <groups/>
                    <ipRanges>
                        <item>
                            <cidrIp>0.0.0.0/0</cidrIp>
                        </item>
                    </ipRanges>
                    <ipv6Ranges/>
                    <prefixListIds/>
                </item>
            </ipPermissionsEgress>
            <tagSet/>
        </item>
    </securityGroupInfo>
</DescribeSecurityGroupsResponse>
"#
    );
    let reply = server
        .user(
            "CreateVolume",
            &[
                ("AvailabilityZone", "us-east-1a"),
                ("Size", "8"),
                ("TagSpecification.1.ResourceType", "volume"),
                ("TagSpecification.1.Tag.1.Key", "Name"),
                ("TagSpecification.1.Tag.1.Value", "data"),
            ],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<CreateVolumeResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <volumeId>vol-ID</volumeId>
    <size>8</size>
    <availabilityZone>us-east-1a</availabilityZone>
    <status>available</status>
    <createTime>TIMESTAMP</createTime>
    <attachmentSet/>
    <volumeType>gp2</volumeType>
    <iops>100</iops>
    <encrypted>false</encrypted>
    <multiAttachEnabled>false</multiAttachEnabled>
    <tagSet>
        <item>
            <key>Name</key>
            <value>data</value>
        </item>
    </tagSet>
</CreateVolumeResponse>
"#
    );
    let volume = text_of(&reply.body, "volumeId").unwrap();
    let reply = server
        .user(
            "CreateSnapshot",
            &[("VolumeId", &volume), ("Description", "nightly")],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<CreateSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <snapshotId>snap-ID</snapshotId>
    <volumeId>vol-ID</volumeId>
    <status>completed</status>
    <startTime>TIMESTAMP</startTime>
    <progress>100%</progress>
    <ownerId>444455556666</ownerId>
    <volumeSize>8</volumeSize>
    <description>nightly</description>
    <encrypted>false</encrypted>
    <tagSet/>
</CreateSnapshotResponse>
"#
    );
    let reply = server.user("AllocateAddress", &[]).await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<AllocateAddressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <publicIp>198.51.100.1</publicIp>
    <domain>vpc</domain>
    <allocationId>eipalloc-ID</allocationId>
    <networkBorderGroup>us-east-1</networkBorderGroup>
</AllocateAddressResponse>
"#
    );
    let reply = server.user("DescribeTags", &[]).await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <tagSet>
        <item>
            <resourceId>vol-ID</resourceId>
            <resourceType>volume</resourceType>
            <key>Name</key>
            <value>data</value>
        </item>
    </tagSet>
</DescribeTagsResponse>
"#
    );
    let reply = server
        .user(
            "DescribeAccountAttributes",
            &[("AttributeName.1", "supported-platforms")],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeAccountAttributesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <accountAttributeSet>
        <item>
            <attributeName>supported-platforms</attributeName>
            <attributeValueSet>
                <item>
                    <attributeValue>VPC</attributeValue>
                </item>
            </attributeValueSet>
        </item>
    </accountAttributeSet>
</DescribeAccountAttributesResponse>
"#
    );
    let reply = server
        .user(
            "DescribeSubnets",
            &[
                ("Filter.1.Name", "availability-zone"),
                ("Filter.1.Value.1", "us-east-1c"),
            ],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeSubnetsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <subnetSet>
        <item>
            <subnetId>subnet-ID</subnetId>
            <subnetArn>arn:aws:ec2:us-east-1:444455556666:subnet/subnet-ID</subnetArn>
            <state>available</state>
            <ownerId>444455556666</ownerId>
            <vpcId>vpc-ID</vpcId>
            <cidrBlock>172.31.32.0/20</cidrBlock>
            <ipv6CidrBlockAssociationSet/>
            <availableIpAddressCount>4091</availableIpAddressCount>
            <availabilityZone>us-east-1c</availabilityZone>
            <availabilityZoneId>use1-az3</availabilityZoneId>
            <defaultForAz>true</defaultForAz>
            <mapPublicIpOnLaunch>true</mapPublicIpOnLaunch>
            <assignIpv6AddressOnCreation>false</assignIpv6AddressOnCreation>
            <tagSet/>
        </item>
    </subnetSet>
</DescribeSubnetsResponse>
"#
    );
    let reply = server.user("DescribeVpcs", &[]).await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <vpcSet>
        <item>
            <vpcId>vpc-ID</vpcId>
            <ownerId>444455556666</ownerId>
            <state>available</state>
            <cidrBlock>172.31.0.0/16</cidrBlock>
            <cidrBlockAssociationSet>
                <item>
                    <cidrBlock>172.31.0.0/16</cidrBlock>
                    <associationId>vpc-cidr-assoc-ID</associationId>
                    <cidrBlockState>
                        <state>associated</state>
                    </cidrBlockState>
                </item>
            </cidrBlockAssociationSet>
            <dhcpOptionsId>dopt-ID</dhcpOptionsId>
            <tagSet/>
            <instanceTenancy>default</instanceTenancy>
            <isDefault>true</isDefault>
        </item>
    </vpcSet>
</DescribeVpcsResponse>
"#
    );
    server.stop().await;
}

#[tokio::test]
async fn instance_shapes() {
    let (server, _dir) = server().await;
    let reply = server
        .user(
            "RunInstances",
            &[
                ("ImageId", "ami-12345678"),
                ("InstanceType", "t2.micro"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("Placement.AvailabilityZone", "us-east-1b"),
                ("ClientToken", "exact"),
            ],
        )
        .await;
    assert_eq!(
        normalized(&reply),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>REQUEST-ID</requestId>
    <reservationId>r-ID</reservationId>
    <ownerId>444455556666</ownerId>
    <groupSet/>
    <instancesSet>
        <item>
            <instanceId>i-ID</instanceId>
            <imageId>ami-12345678</imageId>
            <instanceState>
                <code>0</code>
                <name>pending</name>
            </instanceState>
            <privateDnsName>ip-172-31-16-4.ec2.internal</privateDnsName>
            <dnsName>ec2-PUBLIC-IP.compute-1.amazonaws.com</dnsName>
            <amiLaunchIndex>0</amiLaunchIndex>
            <productCodes/>
            <instanceType>t2.micro</instanceType>
            <launchTime>TIMESTAMP</launchTime>
            <placement>
                <availabilityZone>us-east-1b</availabilityZone>
                <tenancy>default</tenancy>
            </placement>
            <monitoring>
                <state>disabled</state>
            </monitoring>
            <subnetId>subnet-ID</subnetId>
            <vpcId>vpc-ID</vpcId>
            <privateIpAddress>172.31.16.4</privateIpAddress>
            <ipAddress>PUBLIC-IP</ipAddress>
            <groupSet>
                <item>
                    <groupId>sg-ID</groupId>
                    <groupName>default</groupName>
                </item>
            </groupSet>
            <stateReason>
                <code>pending</code>
                <message>pending</message>
            </stateReason>
            <architecture>x86_64</architecture>
            <rootDeviceType>ebs</rootDeviceType>
            <rootDeviceName>/dev/xvda</rootDeviceName>
            <blockDeviceMapping>
                <item>
                    <deviceName>/dev/xvda</deviceName>
                    <ebs>
                        <volumeId>vol-ID</volumeId>
                        <status>attached</status>
                        <attachTime>TIMESTAMP</attachTime>
                        <deleteOnTermination>true</deleteOnTermination>
                    </ebs>
                </item>
            </blockDeviceMapping>
            <virtualizationType>hvm</virtualizationType>
            <networkInterfaceSet>
                <item>
                    <association>
                        <ipOwnerId>amazon</ipOwnerId>
                        <publicDnsName>ec2-PUBLIC-IP.compute-1.amazonaws.com</publicDnsName>
                        <publicIp>PUBLIC-IP</publicIp>
                    </association>
                    <attachment>
                        <attachTime>TIMESTAMP</attachTime>
                        <attachmentId>eni-attach-ID</attachmentId>
                        <deleteOnTermination>true</deleteOnTermination>
                        <deviceIndex>0</deviceIndex>
                        <networkCardIndex>0</networkCardIndex>
                        <status>attached</status>
                    </attachment>
                    <description></description>
                    <groupSet>
                        <item>
                            <groupId>sg-ID</groupId>
                            <groupName>default</groupName>
                        </item>
                    </groupSet>
                    <interfaceType>interface</interfaceType>
                    <ipv6AddressesSet/>
                    <macAddress>MAC</macAddress>
                    <networkInterfaceId>eni-ID</networkInterfaceId>
                    <ownerId>444455556666</ownerId>
                    <privateDnsName>ip-172-31-16-4.ec2.internal</privateDnsName>
                    <privateIpAddress>172.31.16.4</privateIpAddress>
                    <privateIpAddressesSet>
                        <item>
                            <association>
                                <ipOwnerId>amazon</ipOwnerId>
                                <publicDnsName>ec2-PUBLIC-IP.compute-1.amazonaws.com</publicDnsName>
                                <publicIp>PUBLIC-IP</publicIp>
                            </association>
                            <primary>true</primary>
                            <privateDnsName>ip-172-31-16-4.ec2.internal</privateDnsName>
                            <privateIpAddress>172.31.16.4</privateIpAddress>
                        </item>
                    </privateIpAddressesSet>
                    <sourceDestCheck>true</sourceDestCheck>
                    <status>in-use</status>
                    <subnetId>subnet-ID</subnetId>
                    <vpcId>vpc-ID</vpcId>
                </item>
            </networkInterfaceSet>
            <sourceDestCheck>true</sourceDestCheck>
            <clientToken>exact</clientToken>
            <tagSet/>
            <hypervisor>xen</hypervisor>
            <ebsOptimized>false</ebsOptimized>
            <platformDetails>Linux/UNIX</platformDetails>
        </item>
    </instancesSet>
</RunInstancesResponse>
"#
    );
    let id = text_of(&reply.body, "instanceId").unwrap();
    let reply = server
        .user(
            "TerminateInstances",
            &[("InstanceId.1", &id), ("DryRun", "false")],
        )
        .await;
    let body = normalized(&reply);
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TerminateInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n    <requestId>REQUEST-ID</requestId>\n    <instancesSet>\n        <item>\n            <instanceId>i-ID</instanceId>\n            <currentState>\n                <code>32</code>\n                <name>shutting-down</name>\n            </currentState>\n            <previousState>\n"),
        "{body}"
    );
    server.stop().await;
}
