//! One module per subcommand; each has an `Args` struct (clap derive) and a
//! `run` function writing to the given output.

pub mod bench;
pub mod create;
pub mod demo;
pub mod ls;
pub mod publish;
pub mod rm;
pub mod stat;
pub mod tail;
