//! Gateway and agent processes for the tests: the real `ec2-gateway`
//! binary, started by a test and stopped by it (SIGKILL by PID, on drop or
//! when the test kills one).
#![allow(dead_code)]

use ec2_gateway::client::Endpoint;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const BINARY: &str = env!("CARGO_BIN_EXE_ec2-gateway");

/// One `ec2-gateway serve` process.
pub struct GatewayProcess {
    child: Option<Child>,
    pub endpoint: Endpoint,
    /// The operator listener's address (`host:port`), when it is on.
    pub operator: Option<String>,
}

impl GatewayProcess {
    /// Starts `ec2-gateway serve --config config` and waits (up to a
    /// minute) for it to listen; a gateway that exits or hangs before that
    /// fails the test, and is killed by its PID either way.
    pub fn start(config: &std::path::Path) -> Self {
        let mut child = Command::new(BINARY)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("EC2_GATEWAY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ec2-gateway");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Owned from here: dropped (killed) if the wait below panics.
        let mut process = Self {
            child: Some(child),
            endpoint: Endpoint::parse("http://127.0.0.1:1").unwrap(),
            operator: None,
        };
        let (sender, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let url = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match received.recv_timeout(left) {
                Ok(line) => line,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the gateway did not listen within a minute")
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the gateway exited before listening")
                }
            };
            if let Some(rest) = line.strip_prefix("ec2-gateway listening on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            if let Some((_, address)) = line.split_once("dashboard) on http://") {
                process.operator = Some(address.trim().to_string());
            }
        };
        // The rest of stdout is drained (and dropped) by the thread above.
        std::thread::spawn(move || for _ in received {});
        process.endpoint = Endpoint::parse(&url).unwrap();
        process
    }

    /// SIGKILL by PID, then reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `ec2-gateway agent` process.
pub struct AgentProcess {
    child: Option<Child>,
}

impl AgentProcess {
    /// Starts an agent with `args` and the key `(id, secret)`.
    pub fn start(args: &[&str], key: (&str, &str)) -> Self {
        let child = Command::new(BINARY)
            .arg("agent")
            .args(args)
            .env("EC2_AGENT_ACCESS_KEY_ID", key.0)
            .env("EC2_AGENT_SECRET_ACCESS_KEY", key.1)
            .env("EC2_GATEWAY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ec2-gateway agent");
        Self { child: Some(child) }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (`-STOP`, `-CONT`) by PID.
    pub fn signal(&self, signal: &str) {
        Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
    }

    /// SIGKILL by PID, then reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
