//! `amictl describe`: images, their snapshots, sizes, permissions and storage cost.

mod view;

use futures::StreamExt;

use super::contexts::Contexts;
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
pub async fn run(mut contexts: Contexts<'static>, args: Settings) -> anyhow::Result<()> {
    let several = args.scope.asks_several();
    if args.recycle_bin || !several {
        let Some(first) = contexts.next().await.transpose()? else {
            return Err(Error::Failed("no region to describe".to_owned()).into());
        };
        return if args.recycle_bin {
            recycle_bin(&first, &args.query.image_ids).await
        } else {
            one(&first, args).await
        };
    }
    everywhere(contexts, &args.query, args.concurrency).await
}

/// One account and region: a list, or one image in detail.
async fn one(ctx: &Context<'_>, args: Settings) -> anyhow::Result<()> {
    let detailed = args.query.image_ids.len() == 1 && ctx.printer.format() != OutputFormat::Json;
    let images = ctx.ec2.describe_images(&args.query).await?;
    let view = match images.as_slice() {
        [image] if detailed => {
            // Only the owner may read launch permissions; anyone else sees why not.
            let permissions = ctx
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
    ctx.printer.print(&Described {
        images,
        view,
        several: false,
        partial: false,
        now: ctx.now,
    })
}

/// Several accounts or regions. JSON streams: each account × region's images (newest first)
/// as they come, in the order of the accounts and regions, so that an organization's worth is
/// never held whole. A table needs every row to lay itself out: all, newest first.
async fn everywhere(contexts: Contexts<'static>, query: &ImageQuery, concurrency: usize) -> anyhow::Result<()> {
    let (printer, now, unreached) = (contexts.printer, contexts.now, contexts.unreached());
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
    let read = if printer.format() == OutputFormat::Json {
        let mut array = printer.json_array();
        let read = read_everywhere(contexts, query, concurrency, |images| {
            note_found(&images);
            images.iter().try_for_each(|image| array.push(&Staged::of(image, now)))
        })
        .await?;
        array.finish()?;
        read
    } else {
        let mut images = Vec::new();
        let read = read_everywhere(contexts, query, concurrency, |found| {
            note_found(&found);
            images.extend(found);
            Ok(())
        })
        .await?;
        images.sort_by(Image::newest_first);
        printer.print(&Described {
            images,
            view: View::List,
            several: true,
            partial: !read.failures.is_empty() || read.listing.is_some(),
            now,
        })?;
        read
    };
    let Read {
        mut failures,
        places,
        listing,
    } = read;
    if places == 0 && unreached.list().is_empty() && listing.is_none() {
        printer.note("no account in this shard: nothing to describe");
    }
    let missing: Vec<&str> = named
        .iter()
        .filter(|id| !found.contains(*id))
        .map(ImageId::as_str)
        .collect();
    if !missing.is_empty() && listing.is_none() {
        failures.push(format!(
            "image {} not found in any of the {} regions",
            missing.join(", "),
            places
        ));
    }
    if let Some(listing) = listing {
        // The accounts after it were not listed, so not described.
        failures.push(format!("{listing}; the output is partial"));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(failures.join("; ")).into())
    }
}

/// What reading every context found besides images: failures by place, the number of
/// accounts × regions read, and the error that ended the listing of the accounts part way, if
/// any.
struct Read {
    failures: Vec<String>,
    places: usize,
    listing: Option<Error>,
}

/// Reads the images of every context, at most `concurrency` contexts at once, and hands each
/// context's (newest first) to `sink` in the order of the contexts; returns what failed where
/// (a named image missing from a region is no failure: it lives in another).
async fn read_everywhere(
    contexts: Contexts<'static>,
    query: &ImageQuery,
    concurrency: usize,
    mut sink: impl FnMut(Vec<Image>) -> anyhow::Result<()>,
) -> anyhow::Result<Read> {
    let named = !query.image_ids.is_empty();
    let counter = contexts.printer.growing_counter("accounts × regions read");
    let mut answers = contexts
        .map(|ctx| {
            let counter = &counter;
            counter.more();
            let query = query.clone();
            async move {
                let ctx = ctx?;
                let (ctx, answer) = super::on_its_own_task(async move {
                    let answer = ctx.ec2.describe_images(&query).await;
                    // Read-only: this account and region are done with.
                    ctx.ec2.forget();
                    (ctx, answer)
                })
                .await;
                counter.inc();
                Ok::<_, Error>((ctx, answer))
            }
        })
        .buffered(concurrency);
    let mut failures = Vec::new();
    let mut places = 0;
    while let Some(read) = answers.next().await {
        let (ctx, answer) = match read {
            Ok(read) => read,
            Err(listing @ Error::PartlyListed { .. }) => {
                counter.finish();
                return Ok(Read {
                    failures,
                    places,
                    listing: Some(listing),
                });
            }
            // Before any account was reached (the credentials, the first page): nothing was
            // written, and the run fails as it is.
            Err(err) => {
                counter.finish();
                return Err(err.into());
            }
        };
        places += 1;
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
    Ok(Read {
        failures,
        places,
        listing: None,
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
