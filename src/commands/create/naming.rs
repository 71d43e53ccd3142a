//! The new image's name and tags: placeholders filled in, EC2's rules checked, the
//! instance's tags copied.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::cli::CreateArgs;
use crate::error::Error;
use crate::model::Instance;
use crate::output::Printer;
use crate::types::Placeholder;

/// AWS reserves tag keys that start with `aws:`.
pub fn check_tag_keys(args: &CreateArgs) -> Result<(), Error> {
    match args
        .tags
        .iter()
        .chain(&args.snapshot_tags)
        .find(|t| t.key.starts_with("aws:"))
    {
        Some(tag) => Err(Error::Usage(format!(
            "tag key '{}' starts with aws:, which AWS reserves for itself; choose another key",
            tag.key
        ))),
        None => Ok(()),
    }
}

/// `--name` with its placeholders filled in; without `--name`, the instance's Name tag (or
/// ID) and a timestamp, said on stderr.
pub fn image_name(args: &CreateArgs, instance: &Instance, now: Timestamp, printer: &Printer) -> Result<String, Error> {
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
        Placeholder::Date => Ok(now.strftime("%Y-%m-%d").to_string()),
        Placeholder::Timestamp => Ok(now.strftime("%Y%m%d-%H%M%S").to_string()),
        Placeholder::InstanceId => Ok(instance.instance_id.clone()),
        Placeholder::InstanceName => instance.name().map(str::to_owned).ok_or_else(|| {
            format!(
                "instance {} has no Name tag to fill {{instance_name}} with; use {{instance_id}} instead",
                instance.instance_id
            )
        }),
    }
}

/// `--copy-instance-tags` (without AWS's own `aws:` tags), then `--tag`, which wins.
pub fn image_tags(instance: &Instance, args: &CreateArgs) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    if args.copy_instance_tags {
        tags.extend(
            instance
                .tags
                .iter()
                .filter(|(key, _)| !key.starts_with("aws:"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    tags.extend(args.tags.iter().map(|t| (t.key.clone(), t.value.clone())));
    tags
}
