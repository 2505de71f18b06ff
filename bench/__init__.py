"""Side-by-side benchmarks of offload's SQS broker and its peers (`make bench`, not `make test`)."""
