"""The installed benchmark, `python -m fastloader.bench` (`__main__`): stock PyTorch against
fastloader on a synthetic detection set, so a user can measure their own machine after a pip
install. `main_job` runs the sections, `loaders` builds the DataLoaders it compares, `padding`
counts the pixels aspect-ratio grouping saves. It may import any subpackage; nothing in the
product imports `bench`."""
