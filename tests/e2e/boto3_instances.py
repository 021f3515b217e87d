"""boto3 launching through a proxy that loses the first RunInstances answer.

The proxy forwards every request to the gateway unchanged, but replaces the
gateway's first RunInstances answer with a 503: boto3 then retries with the
same ClientToken, exactly as it does after a real network failure, and the
gateway must answer with the reservation it already created instead of
launching a second one. Environment as boto3_zones.py.
"""
import http.client
import http.server
import os
import sys
import threading

import boto3
from botocore.config import Config

ENDPOINT = os.environ["EC2_GATEWAY_ENDPOINT"]
TARGET = ENDPOINT.split("//", 1)[1].rstrip("/")
IMAGE = "ami-0b1c2d3e4f5a6b7c8"
lost_answers = []


class LosingProxy(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        upstream = http.client.HTTPConnection(TARGET, timeout=30)
        headers = {k: v for k, v in self.headers.items()}
        upstream.request("POST", self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        if b"Action=RunInstances" in body and not lost_answers:
            lost_answers.append(payload.decode())
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection"):
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LosingProxy)
threading.Thread(target=proxy.serve_forever, daemon=True).start()
through_proxy = f"http://127.0.0.1:{proxy.server_address[1]}"

ec2 = boto3.client(
    "ec2",
    endpoint_url=through_proxy,
    region_name="us-east-1",
    config=Config(retries={"mode": "legacy", "max_attempts": 3}),
)
reservation = ec2.run_instances(ImageId=IMAGE, InstanceType="t3.micro", MinCount=2, MaxCount=2)
check("first answer was lost", len(lost_answers) == 1)
check("the retry got the original reservation", reservation["ReservationId"] in lost_answers[0], (reservation["ReservationId"], lost_answers[0][:300]))
ids = sorted(i["InstanceId"] for i in reservation["Instances"])
token = reservation["Instances"][0]["ClientToken"]
check("boto3 sent a ClientToken", len(token) > 0)
listed = ec2.describe_instances(Filters=[{"Name": "client-token", "Values": [token]}])
found = sorted(i["InstanceId"] for r in listed["Reservations"] for i in r["Instances"])
check("exactly one launch", found == ids, (found, ids))

waiter = ec2.get_waiter("instance_running")
waiter.wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]}
check("running", set(states.values()) == {"running"}, states)
changes = ec2.terminate_instances(InstanceIds=ids)["TerminatingInstances"]
check("terminating", all(c["CurrentState"]["Name"] in ("shutting-down", "terminated") for c in changes), changes)
ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
print("boto3 instances: all checks passed")
proxy.shutdown()
