//! What other real clients send and expect (issue 10): unindexed list
//! members, EC2's `ExecutableBy=self`, image device names, euca2ools 3.4's
//! invented SigV4 scope, and Eucalyptus's `euca-describe-instance-types`.

mod common;

use chrono::Utc;
use common::*;
use ec2_gateway::auth::signer::{form_body, sign_v4_post, SigningCredentials};
use ec2_gateway::client::{self, Reply};
use ec2_gateway::config::StorageBackend;
use ec2_gateway::secret::Secret;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    (TestServer::start(config).await, dir)
}

/// Sends `pairs` as a SigV4 form POST to `path`, signed with `credentials`,
/// without the schema check (for answers in Eucalyptus's shape).
async fn raw_call(
    server: &TestServer,
    credentials: &SigningCredentials,
    path: &str,
    pairs: &[(&str, &str)],
) -> Reply {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let body = form_body(&pairs);
    let mut headers = sign_v4_post(
        credentials,
        &server.endpoint.authority,
        path,
        &body,
        Utc::now(),
    );
    headers.push(("Host", server.endpoint.authority.clone()));
    client::send(&server.endpoint, "POST", path, &headers, body.into_bytes())
        .await
        .unwrap()
}

/// The answer without the indentation between elements.
fn squashed(xml: &str) -> String {
    xml.lines().map(str::trim).collect()
}

/// Finding 1: `Filter.1.Value=x` and `ZoneName=x` (no index) are the first
/// member, as EC2 takes them (Perl's VM::EC2 sends them so).
#[tokio::test]
async fn unindexed_members_are_the_first() {
    let (server, _dir) = server().await;
    let launched = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("MinCount", "2"),
                ("MaxCount", "2"),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "role"),
                ("TagSpecification.1.Tag.1.Value", "web"),
            ],
        )
        .await;
    assert_eq!(launched.status, 200, "{}", launched.body);
    server
        .user(
            "RunInstances",
            &[("ImageId", IMAGE), ("MinCount", "1"), ("MaxCount", "1")],
        )
        .await;
    let filtered = server
        .user(
            "DescribeInstances",
            &[("Filter.1.Name", "tag:role"), ("Filter.1.Value", "web")],
        )
        .await;
    assert_eq!(filtered.status, 200, "{}", filtered.body);
    assert_eq!(filtered.body.matches("<instanceId>").count(), 2);
    let zone = server
        .user("DescribeAvailabilityZones", &[("ZoneName", "us-east-1b")])
        .await;
    assert_eq!(
        column(&zone, "availabilityZoneInfo", "zoneName"),
        ["us-east-1b"]
    );
    let id = client::text_of(&launched.body, "instanceId").unwrap();
    let one = server
        .user("DescribeInstances", &[("InstanceId", &id)])
        .await;
    assert_eq!(one.body.matches("<instanceId>").count(), 1, "{}", one.body);
    // Both spellings of one member at once are refused, not guessed.
    let both = server
        .user(
            "DescribeAvailabilityZones",
            &[("ZoneName", "us-east-1a"), ("ZoneName.1", "us-east-1b")],
        )
        .await;
    assert_eq!(error_code(&both), "InvalidParameterValue");
    server.stop().await;
}

/// Finding 2: `ExecutableBy=self` is the images the caller has an explicit
/// launch permission for (its own), not the public ones too.
#[tokio::test]
async fn executable_by_self_is_only_the_callers_images() {
    let (server, _dir) = server().await;
    let registered = server
        .user(
            "RegisterImage",
            &[("Name", "my-image"), ("RootDeviceName", "/dev/sda1")],
        )
        .await;
    let own = client::text_of(&registered.body, "imageId").unwrap();
    let ids = |reply: &Reply| column(reply, "imagesSet", "imageId");
    let by_self = server
        .user("DescribeImages", &[("ExecutableBy.1", "self")])
        .await;
    assert_eq!(ids(&by_self), std::slice::from_ref(&own));
    let by_all = server
        .user("DescribeImages", &[("ExecutableBy.1", "all")])
        .await;
    assert!(!ids(&by_all).contains(&own));
    assert!(ids(&by_all).contains(&IMAGE.to_string()));
    let by_id = server
        .user("DescribeImages", &[("ExecutableBy.1", USER_ACCOUNT)])
        .await;
    assert_eq!(ids(&by_id), [own]);
    server.stop().await;
}

/// Finding 3: RegisterImage keeps `RootDeviceName` and each mapping's
/// `DeviceName` (and its EBS settings).
#[tokio::test]
async fn registered_images_keep_their_device_names() {
    let (server, _dir) = server().await;
    let registered = server
        .user(
            "RegisterImage",
            &[
                ("Name", "with-devices"),
                ("RootDeviceName", "/dev/sda1"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/sda1"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "20"),
                ("BlockDeviceMapping.1.Ebs.VolumeType", "gp3"),
                ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "false"),
                ("BlockDeviceMapping.2.DeviceName", "/dev/sdb"),
                ("BlockDeviceMapping.2.VirtualName", "ephemeral0"),
            ],
        )
        .await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let id = client::text_of(&registered.body, "imageId").unwrap();
    let described = server.user("DescribeImages", &[("ImageId.1", &id)]).await;
    let body = &squashed(&described.body);
    assert!(
        body.contains("<rootDeviceName>/dev/sda1</rootDeviceName>"),
        "{body}"
    );
    assert!(body.contains("<item><deviceName>/dev/sda1</deviceName><ebs><deleteOnTermination>false</deleteOnTermination><volumeSize>20</volumeSize><volumeType>gp3</volumeType></ebs></item>"), "{body}");
    assert!(
        body.contains(
            "<item><deviceName>/dev/sdb</deviceName><virtualName>ephemeral0</virtualName></item>"
        ),
        "{body}"
    );
    // Instances launched from it report its root device.
    let launched = server
        .user(
            "RunInstances",
            &[
                ("ImageId", &id),
                ("InstanceType", "t3.micro"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
            ],
        )
        .await;
    assert_eq!(launched.status, 200, "{}", launched.body);
    assert_eq!(
        client::text_of(&launched.body, "rootDeviceName").unwrap(),
        "/dev/sda1"
    );
    let missing = server
        .user(
            "RegisterImage",
            &[
                ("Name", "no-device-name"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "8"),
            ],
        )
        .await;
    assert_eq!(error_code(&missing), "MissingParameter");
    server.stop().await;
}

/// Finding 5: euca2ools 3.4 signs SigV4 with an invented region
/// (`undefined-<pid>`) and `Version=2015-10-01`, on Eucalyptus's path.
/// Accepted while strict scope is off (the default).
#[tokio::test]
async fn euca2ools_invented_scope_is_accepted() {
    let (server, _dir) = server().await;
    let euca = SigningCredentials {
        access_key_id: USER_KEY.into(),
        secret: Secret::new(USER_SECRET),
        region: "undefined-31337".into(),
        service: "ec2".into(),
    };
    let reply = raw_call(
        &server,
        &euca,
        "/services/compute/",
        &[
            ("Action", "DescribeAvailabilityZones"),
            ("Version", "2015-10-01"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .body
        .contains("xmlns=\"http://ec2.amazonaws.com/doc/2015-10-01/\""));
    assert_eq!(
        column(&reply, "availabilityZoneInfo", "zoneName"),
        ["us-east-1a", "us-east-1b", "us-east-1c"]
    );
    server.stop().await;
}

/// Finding 6: `euca-describe-instance-types` (Availability=true, an old API
/// version) gets Eucalyptus's `instanceTypeDetails`, with how many
/// instances still fit and fit at most per zone, from the hosts.
#[tokio::test]
async fn eucalyptus_instance_type_availability() {
    let (server, _dir) = server().await;
    // Test hosts: us-east-1a has two 16-vCPU hosts, b and c one each.
    // m5.2xlarge: 8 vCPUs, 32 GiB; two per host.
    let launched = server
        .user(
            "RunInstances",
            &[
                ("ImageId", IMAGE),
                ("InstanceType", "m5.2xlarge"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("Placement.AvailabilityZone", "us-east-1b"),
            ],
        )
        .await;
    assert_eq!(launched.status, 200, "{}", launched.body);
    let reply = raw_call(
        &server,
        &admin(),
        "/services/compute",
        &[
            ("Action", "DescribeInstanceTypes"),
            ("Version", "2013-02-01"),
            ("Availability", "true"),
            ("InstanceType.1", "m5.2xlarge"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = &squashed(&reply.body);
    assert!(body.contains("<instanceTypeDetails><item><name>m5.2xlarge</name><cpu>8</cpu><memory>32768</memory><disk>0</disk><networkInterfaces>1</networkInterfaces><availability>"), "{body}");
    for (zone, available, max) in [
        ("us-east-1a", 4, 4),
        ("us-east-1b", 1, 2),
        ("us-east-1c", 2, 2),
    ] {
        assert!(
            body.contains(&format!(
                "<item><zoneName>{zone}</zoneName><available>{available}</available><max>{max}</max></item>"
            )),
            "{zone}: {body}"
        );
    }
    // Availability=false: the details without the zones.
    let reply = raw_call(
        &server,
        &admin(),
        "/",
        &[
            ("Action", "DescribeInstanceTypes"),
            ("Version", "2013-02-01"),
            ("Availability", "false"),
        ],
    )
    .await;
    assert!(reply.body.contains("<instanceTypeDetails>"));
    assert!(!reply.body.contains("<availability>"));
    // Asked the AWS way, the AWS shape.
    let aws = server
        .user("DescribeInstanceTypes", &[("InstanceType.1", "m5.2xlarge")])
        .await;
    assert!(aws.body.contains("<instanceTypeSet>"));
    assert!(!aws.body.contains("instanceTypeDetails"));
    server.stop().await;
}
