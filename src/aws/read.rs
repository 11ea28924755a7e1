//! What every observation shares: reading all pages of a listing, finding an
//! environment's resources by their tags, and tags as a map.

use std::collections::BTreeMap;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types as ec2;
use aws_smithy_async::future::pagination_stream::PaginationStream;

use super::{AwsError, error};
use crate::plan::TAG_ENVIRONMENT;

/// Every item of a paginated listing (any SDK's `into_paginator().items().send()`), or
/// the first error, said to have happened while `what`.
pub(crate) async fn all<T, E>(
    what: &str,
    pages: PaginationStream<Result<T, SdkError<E>>>,
) -> Result<Vec<T>, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    pages
        .collect::<Result<Vec<T>, _>>()
        .await
        .map_err(|e| error(what, e))
}

/// `read` as a task of its own. A read that others wait on (a listing answered a page
/// at a time, or one whose answers start further reads) then sends each next request
/// as soon as its answer is read, on whichever core is free, instead of after every
/// other answer that the task it was part of has to parse. Dropping the returned
/// future stops the task. Only for such reads: every listing a task of its own was
/// measured slower (benches/plan.rs, 1,000 environments: 1,400 ms against 944 ms),
/// the answers then crossing cores for nothing.
pub(crate) async fn as_task<T: Send + 'static>(
    what: &'static str,
    read: impl Future<Output = Result<T, AwsError>> + Send + 'static,
) -> Result<T, AwsError> {
    let mut task = tokio::task::JoinSet::new();
    task.spawn(read);
    match task.join_next().await {
        Some(joined) => joined.map_err(|e| join_error(what, e))?,
        None => unreachable!("the read's task was spawned above"),
    }
}

/// Environments asked for in one filtered read. EC2 refuses a call whose filters hold
/// more than 200 values (`FilterLimitExceeded`), and Auto Scaling answers 100 groups a
/// page at most: sets of 100 keep every read one request of one page (the other
/// filters' values fit beside them), and larger counts are read a set at a time, the
/// sets side by side.
const ENVIRONMENTS_PER_READ: usize = 100;

/// What `read` finds for each set of `ENVIRONMENTS_PER_READ` environments, the sets
/// side by side, in one list; or the first error.
pub(crate) async fn by_sets<T, F, Fut>(envs: &[String], read: F) -> Result<Vec<T>, AwsError>
where
    F: Fn(&[String]) -> Fut,
    Fut: Future<Output = Result<Vec<T>, AwsError>>,
{
    let sets = envs.chunks(ENVIRONMENTS_PER_READ).map(read);
    let found = futures_util::future::try_join_all(sets).await?;
    Ok(found.into_iter().flatten().collect())
}

/// Every item of a paginated listing filtered by environment (`pages` of a set of
/// environments), read `by_sets`; or the first error, said to have happened while
/// `what`.
pub(crate) async fn all_by_sets<T, E, F>(
    what: &str,
    envs: &[String],
    pages: F,
) -> Result<Vec<T>, AwsError>
where
    F: Fn(&[String]) -> PaginationStream<Result<T, SdkError<E>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    by_sets(envs, |set| all(what, pages(set))).await
}

/// The EC2 filter that finds the resources of `envs` by their `strata:environment` tag.
pub(crate) fn env_filter(envs: &[String]) -> ec2::Filter {
    ec2::Filter::builder()
        .name(format!("tag:{TAG_ENVIRONMENT}"))
        .set_values(Some(envs.to_vec()))
        .build()
}

/// EC2 tags as a map.
pub(crate) fn ec2_tags(tags: &[ec2::Tag]) -> BTreeMap<String, String> {
    tag_map(tags.iter().map(|t| (t.key(), t.value())))
}

/// Tags as a map, from any SDK's `(key, value)` pairs; a tag without a key is skipped.
pub(crate) fn tag_map<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
        .collect()
}

/// A concurrent read that panicked or was cancelled.
pub(crate) fn join_error(what: &str, e: tokio::task::JoinError) -> AwsError {
    AwsError::new(what, "Internal", e.to_string(), None)
}

/// A field AWS always answers with. Its absence is an error naming the resource,
/// never an empty value that a plan would then try to "fix".
pub(crate) fn required<T>(value: Option<T>, resource: &str, field: &str) -> Result<T, AwsError> {
    value.ok_or_else(|| {
        AwsError::new(
            format!("reading {resource}"),
            "IncompleteAnswer",
            format!("AWS described it without its {field}"),
            None,
        )
    })
}

/// A field AWS always answers with, read as one of strata's types (a CIDR block, a
/// zone); a missing value, or one strata cannot read, is an error naming the resource
/// (and the value).
pub(crate) fn parsed<T: TryFrom<String>>(
    value: Option<&str>,
    resource: &str,
    field: &str,
) -> Result<T, AwsError> {
    let text = required(value, resource, field)?;
    T::try_from(text.to_owned()).map_err(|_| {
        AwsError::new(
            format!("reading {resource}"),
            "UnexpectedAnswer",
            format!("AWS described its {field} as `{text}`, which strata cannot read"),
            None,
        )
    })
}
