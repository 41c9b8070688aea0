# Type stubs for the compiled module fastloader._C (csrc/bindings); keep in step with the bindings.
import numpy as np
import numpy.typing as npt

class AliasTable:
    def __init__(self, weights: npt.NDArray[np.float64]) -> None: ...
    def __len__(self) -> int: ...
    def draw(
        self,
        seed: int,
        stream: int,
        start: int,
        out: npt.NDArray[np.int64],
        count: int,
        threads: int = 1,
    ) -> None: ...
    def acceptance(self) -> npt.NDArray[np.float64]: ...
    def alias(self) -> npt.NDArray[np.int64]: ...

# out must hold 2*k items (working space); the k indices end up in out[:k].
def sample_without_replacement(
    weights: npt.NDArray[np.float64],
    k: int,
    seed: int,
    stream: int,
    out: npt.NDArray[np.int64],
    threads: int = 1,
) -> None: ...
