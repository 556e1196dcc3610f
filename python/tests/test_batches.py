"""Go's batch order, reproduced: math/rand/v2 PCG(seed, step+1).IntN(n)."""

import os
import subprocess

from helpers import go_cli  # noqa: F401  (the Go toolchain is required anyway)
from vlora_torch.batches import batch_indices

PROGRAM = """package main

import (
	"fmt"
	"math/rand/v2"
)

func main() {
	for _, c := range [][4]uint64{{0, 0, 4, 1024}, {7, 3, 5, 1000}, {123456789, 10, 3, 64}, {0, 19, 4, 37}, {1<<64 - 1, 5, 6, 3}, {42, 0, 3, 1<<40 + 7}} {
		rng := rand.New(rand.NewPCG(c[0], c[1]+1))
		for i := uint64(0); i < c[2]; i++ {
			fmt.Print(rng.IntN(int(c[3])), " ")
		}
		fmt.Println()
	}
}
"""

CASES = [(0, 0, 4, 1024), (7, 3, 5, 1000), (123456789, 10, 3, 64), (0, 19, 4, 37), ((1 << 64) - 1, 5, 6, 3), (42, 0, 3, (1 << 40) + 7)]


def test_batch_indices_equal_go(tmp_path):
    (tmp_path / "main.go").write_text(PROGRAM)
    (tmp_path / "go.mod").write_text("module pcg\n\ngo 1.22\n")
    r = subprocess.run(["go", "run", "."], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, GOFLAGS="-mod=mod", GOWORK="off"))
    assert r.returncode == 0, r.stderr
    want = [[int(v) for v in line.split()] for line in r.stdout.strip().splitlines()]
    got = [batch_indices(seed, s, b, n) for seed, s, b, n in CASES]
    assert got == want
