//! The CLI's end-to-end tests, one module per command or service, linked into one test binary
//! (`cargo test -p autocontour-cli --test cli [FILTER]`).

mod anonymise_cli;
mod bad_inputs;
mod evaluate_cli;
mod exit_codes;
mod gateway_dcmtk;
mod gateway_orthanc;
mod limits_cli;
mod queue_rabbitmq;
mod segment_cli;
