"""``upcall review``: an analyst verifies detections in the browser; verdicts go to Raven tables
beside the detections' tree, and a sample's verdicts estimate the precision of the whole archive."""
