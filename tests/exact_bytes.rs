//! Every response and error shape, pinned byte for byte (request ids,
//! timestamps and heartbeat ages replaced by placeholders).

mod common;

use common::*;
use ec2_gateway::client::Reply;
use ec2_gateway::config::StorageBackend;

/// Replaces the request id, every `YYYY-MM-DDTHH:MM:SS.mmmZ` timestamp and
/// every `(... ago)` age with placeholders.
fn normalized(reply: &Reply) -> String {
    let request_id = reply.headers["x-amzn-requestid"].to_str().unwrap();
    let text = reply.body.replace(request_id, "REQUEST-ID");
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
