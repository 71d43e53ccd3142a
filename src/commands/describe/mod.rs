//! `amictl describe`: images, their snapshots, sizes, permissions and storage cost.

mod view;

use futures::StreamExt;

use super::{Context, Scope};
use crate::ec2::ImageQuery;
use crate::error::Error;
use crate::model::Image;
use crate::output::OutputFormat;
use crate::types::{ImageId, Price};
use view::{Binned, Described, Staged, View};

/// What `describe` was asked (`crate::settings` fills it from the command line).
pub struct Settings {
    pub query: ImageQuery,
    /// `--recycle-bin`: the images in the Recycle Bin instead.
    pub recycle_bin: bool,
    pub snapshot_price: Price,
    /// Accounts × regions read at once.
    pub concurrency: usize,
    pub scope: Scope,
}

/// Describes images in each context's region, concurrently; one region's failure is reported
/// (exit 1) without losing the others' images.
pub async fn run(contexts: &[Context<'_>], args: Settings) -> anyhow::Result<()> {
    let Some(first) = contexts.first() else {
        return Err(Error::Failed("no region to describe".to_owned()).into());
    };
    if args.recycle_bin {
        return recycle_bin(first, &args.query.image_ids).await;
    }
    let now = first.now;
    let several = contexts.len() > 1 || args.scope.asks_several();
    let detailed = args.query.image_ids.len() == 1 && first.printer.format() != OutputFormat::Json && !several;
    let query = args.query;
    if !several {
        let images = first.ec2.describe_images(&query).await?;
        let view = match images.as_slice() {
            [image] if detailed => {
                // Only the owner may read launch permissions; anyone else sees why not.
                let permissions = first
                    .ec2
                    .launch_permissions(&image.image_id)
                    .await
                    .map_err(|err| err.to_string());
                View::Detail {
                    permissions,
                    price: args.snapshot_price,
                }
            }
            _ => View::List,
        };
        return first.printer.print(&Described {
            images,
            view,
            several: false,
            now,
        });
    }

    everywhere(contexts, &query, args.concurrency, now).await
}

/// Several accounts or regions. JSON streams: each account × region's images (newest first)
/// as they come, in the order of the accounts and regions, so that an organization's worth is
/// never held whole. A table needs every row to lay itself out: all, newest first.
async fn everywhere(
    contexts: &[Context<'_>],
    query: &ImageQuery,
    concurrency: usize,
    now: jiff::Timestamp,
) -> anyhow::Result<()> {
    let first = &contexts[0];
    let named = &query.image_ids;
    let mut found: std::collections::HashSet<ImageId> = std::collections::HashSet::new();
    let mut note_found = |images: &[Image]| {
        found.extend(
            images
                .iter()
                .filter(|i| named.contains(&i.image_id))
                .map(|i| i.image_id.clone()),
        );
    };
    let mut failures = if first.printer.format() == OutputFormat::Json {
        let mut array = first.printer.json_array();
        let failures = read_everywhere(contexts, query, !named.is_empty(), concurrency, |images| {
            note_found(&images);
            images.iter().try_for_each(|image| array.push(&Staged::of(image, now)))
        })
        .await?;
        array.finish()?;
        failures
    } else {
        let mut images = Vec::new();
        let failures = read_everywhere(contexts, query, !named.is_empty(), concurrency, |found| {
            note_found(&found);
            images.extend(found);
            Ok(())
        })
        .await?;
        images.sort_by(Image::newest_first);
        first.printer.print(&Described {
            images,
            view: View::List,
            several: true,
            now,
        })?;
        failures
    };
    let missing: Vec<&str> = named
        .iter()
        .filter(|id| !found.contains(*id))
        .map(ImageId::as_str)
        .collect();
    if !missing.is_empty() {
        failures.push(format!(
            "image {} not found in any of the {} regions",
            missing.join(", "),
            contexts.len()
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(failures.join("; ")).into())
    }
}

/// Reads the images of every context, at most `concurrency` contexts at once, and hands each
/// context's (newest first) to `sink` in the order of the contexts; returns what failed where
/// (a named image missing from a region is no failure: it lives in another).
async fn read_everywhere(
    contexts: &[Context<'_>],
    query: &ImageQuery,
    named: bool,
    concurrency: usize,
    mut sink: impl FnMut(Vec<Image>) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<String>> {
    let counter = contexts[0].printer.counter(contexts.len(), "accounts × regions read");
    let mut answers = futures::stream::iter(contexts.iter().map(|ctx| {
        let counter = &counter;
        async move {
            let answer = ctx.ec2.describe_images(query).await;
            // Read-only: this account and region are done with.
            ctx.ec2.forget();
            counter.inc();
            (ctx, answer)
        }
    }))
    .buffered(concurrency);
    let mut failures = Vec::new();
    while let Some((ctx, answer)) = answers.next().await {
        match answer {
            Ok(mut found) => {
                found.sort_by(Image::newest_first);
                sink(found)?;
            }
            Err(Error::NotFound { .. }) if named => {}
            Err(err) => {
                // An error that names its region already needs no prefix in the caller's account.
                let message = err.to_string();
                failures.push(
                    if ctx.ec2.account_id().is_none() && message.contains(ctx.ec2.region().as_str()) {
                        message
                    } else {
                        format!("{}: {message}", ctx.ec2.place())
                    },
                );
            }
        }
    }
    counter.finish();
    Ok(failures)
}

/// No images, for a run with no account to look in (an empty `--shard`).
pub fn nothing(printer: &crate::output::Printer) -> anyhow::Result<()> {
    printer.print(&Described {
        images: Vec::new(),
        view: View::List,
        several: true,
        now: printer.now(),
    })
}

/// `describe --recycle-bin`: the images deregistered into the bin, restorable until they leave.
async fn recycle_bin(ctx: &Context<'_>, ids: &[ImageId]) -> anyhow::Result<()> {
    let Some(entries) = ctx.ec2.recycle_bin_entries(ids).await? else {
        return Err(Error::Failed(format!(
            "the endpoint {} does not support ListImagesInRecycleBin",
            ctx.ec2.endpoint()
        ))
        .into());
    };
    ctx.printer.print(&Binned { entries })
}
