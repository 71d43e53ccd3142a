//! The new image's name and tags: placeholders filled in, EC2's rules checked, the
//! instance's tags copied.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::Settings;
use crate::error::Error;
use crate::model::Instance;
use crate::output::Printer;
use crate::types::{Placeholder, Tag};

/// `--name` with its placeholders filled in; without `--name`, the instance's Name tag (or
/// ID) and a timestamp, said on stderr.
pub fn image_name(args: &Settings, instance: &Instance, now: Timestamp, printer: &Printer) -> Result<String, Error> {
    let default = if instance.name().is_some() {
        "{instance_name}-{timestamp}"
    } else {
        "{instance_id}-{timestamp}"
    };
    let template = match &args.name {
        Some(template) => template.clone(),
        None => default.parse().map_err(Error::Usage)?,
    };
    let name = template
        .expand(|placeholder| placeholder_value(placeholder, instance, now))
        .map_err(Error::Usage)?;
    if args.name.is_none() {
        printer.note(format!("image name: {name}"));
    }
    Ok(name)
}

pub fn placeholder_value(placeholder: Placeholder, instance: &Instance, now: Timestamp) -> Result<String, String> {
    match placeholder {
        Placeholder::Date => Ok(Placeholder::date_of(now)),
        Placeholder::Timestamp => Ok(Placeholder::timestamp_of(now)),
        Placeholder::InstanceId => Ok(instance.instance_id.clone()),
        Placeholder::InstanceName => instance.name().map(str::to_owned).ok_or_else(|| {
            format!(
                "instance {} has no Name tag to fill {{instance_name}} with; use {{instance_id}} instead",
                instance.instance_id
            )
        }),
        Placeholder::SourceName | Placeholder::SourceRegion => {
            Err(format!("{} is for `amictl copy`", placeholder.written()))
        }
    }
}

/// `--copy-instance-tags` (without AWS's own `aws:` tags), then `--tag`, which wins.
pub fn image_tags(instance: &Instance, args: &Settings) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    if args.copy_instance_tags {
        tags.extend(
            instance
                .tags
                .iter()
                // AWS's own, and amictl's records, which would be false of the image.
                .filter(|(key, _)| !key.starts_with("aws:") && !Tag::is_amictls(key))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    tags.extend(Tag::map(&args.tags));
    tags
}
