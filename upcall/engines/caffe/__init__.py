"""The caffe engine: real Caffe 1.0 (``root`` finds and runs it; ``engine`` trains with it)."""
