"""The installed benchmark, `python -m fastloader.bench` (`__main__`): stock PyTorch against
fastloader on a synthetic detection set, so a user can measure their own machine after a pip
install. `main_job` holds the command line, the report and the plot; `sections` (sampler,
collate, padding, annotations) and `end_to_end` (DataLoaders built by `loaders`, against the
decode floor) and `augmented` (Pytorch_Retinaface's cv2 + preproc pipeline against the fused
`fastloader.transforms` one) measure; `harness` is the measuring and table code every benchmark
shares and `stock` the stock ways they compare against. It may import any subpackage; nothing in the
product imports `bench`."""
