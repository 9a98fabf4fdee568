//! Integration tests of the gateway: real servers on 127.0.0.1:0 over mutual
//! TLS with certificates made at test time, a real SQLite registry seeded
//! with the synthetic population, the real `lienthong` binary, and the local
//! RabbitMQ (events consumed by a real AMQP consumer). The one test that
//! stops and restarts a broker does it to the tests' own node
//! ([`amqp::OwnBroker`], started by `scripts/test.sh`), never to the
//! machine's.

mod amqp;
mod process;
mod support;

mod audit;
mod batch;
mod cli;
mod cluster;
mod cluster_audit;
mod consent;
mod docker;
mod events;
mod exchange;
mod limits;
mod metrics;
mod privacy;
mod registry;
mod replicas;
mod request_ids;
mod settings;
mod shutdown;
mod tls;
mod up;
