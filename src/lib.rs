//! ec2-gateway: an EC2-compatible query API server.
//!
//! The AWS CLI, boto3, boto 2 and euca2ools point their endpoint at it and
//! work unchanged: it verifies their AWS signatures (SigV4, SigV2, SigV1),
//! runs EC2 actions against its own compute core and answers in EC2's XML.
//! Availability zones come from the compute hosts registered in them.
//!
//! The layers, top to bottom (each knows only the one below):
//!
//! - [`server`]: hyper accept loop, connection limits, timeouts, shutdown.
//! - [`gateway`]: one request: body limits ([`body`]), parameters, signature, rate
//!   limits ([`throttle`]), action, XML.
//! - [`protocol`]: query/form parameters, filters, the XML writer.
//! - [`auth`]: SigV4/SigV2/SigV1 verification and client-side signing.
//! - [`api`]: the `Action` enum, one typed request per action, handlers.
//! - [`compute`]: accounts, compute services and zones; no HTTP, no XML.
//! - [`store`]: the storage trait, sled and in-memory backends, group commit.
//!
//! Around them: [`config`] (TOML + environment), [`app`] (wiring),
//! [`dev`] (development mode for moto/LocalStack test suites),
//! [`client`] and [`admin_cli`] (the `ec2-gateway admin` commands),
//! [`error`] (the one error enum), [`clock`], [`secret`] and [`sync`];
//! [`operator`] (metrics, health checks and the dashboard on their own
//! listener) and [`backup`] (backups and restore); [`agent`] (a compute
//! host as a process of its own).

pub mod admin_cli;
pub mod agent;
pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod body;
pub mod client;
pub mod clock;
pub mod compute;
pub mod config;
pub mod dev;
pub mod error;
pub mod gateway;
pub mod image_build;
pub mod instance_init;
pub mod log_writer;
pub mod operator;
pub mod protocol;
pub mod secret;
pub mod server;
pub mod store;
pub mod sync;
pub mod throttle;
pub mod write_deadline;
