//! Each MetricTemplate backend against a server speaking its API: a passing and a failing
//! value, no data, an authentication failure and an unreachable backend, with messages that
//! name the backend, the template and the cause and never a credential; and its online check.

mod common;

mod cloudwatch;
mod datadog;
mod dynatrace;
mod externalmetrics;
mod graphite;
mod influxdb;
mod keptn;
mod leaks;
mod newrelic;
mod splunk;
mod stackdriver;
