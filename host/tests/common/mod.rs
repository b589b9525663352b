//! Shared support for the host's integration tests: fresh databases on both backends,
//! test configs, and small builders. Each test file includes this module with `mod common;`.
#![allow(dead_code)]

pub mod anvil;
pub mod browser;
pub mod db;
pub mod dev;
pub mod merchant;
pub mod plugins;
pub mod polypay;
pub mod shape;
pub mod tron;
pub mod tron_chain;
pub mod two_factor;
