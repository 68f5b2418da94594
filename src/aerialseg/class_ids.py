"""The one class id that is no class, shared by labels, maps and every score."""

IGNORE_INDEX = 255
"""The class id of pixels that have no class: ignored pixels of decoded labels (left out of
the loss and of every score) and no-data pixels of images and of the maps predicted for them
(a map's nodata value, unless the dataset's own codes need another, `io.write.map_codes`)."""
