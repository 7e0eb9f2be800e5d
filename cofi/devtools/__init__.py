"""Developer tools that are not workflow jobs: benchmarks, the GPU checks, the references, the job server."""
