// One-off interoperability check: read a disclosure_ledger tlog-tiles
// publication with golang.org/x/mod/sumdb/tlog's tile reader.
package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := t.Path() // tile/8/L/NNN[.p/W]
		p = "tile/" + strings.TrimPrefix(p, "tile/8/")
		b, err := os.ReadFile(filepath.Join(d.dir, p))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	dir := os.Args[1]
	cp, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		panic(err)
	}
	lines := strings.Split(string(cp), "\n")
	n, _ := strconv.ParseInt(lines[1], 10, 64)
	rootBytes, _ := base64.StdEncoding.DecodeString(lines[2])
	var root tlog.Hash
	copy(root[:], rootBytes)
	tree := tlog.Tree{N: n, Hash: root}
	hr := tlog.TileHashReader(tree, dirTiles{dir})
	th, err := tlog.TreeHash(n, hr)
	if err != nil {
		panic(err)
	}
	if th != root {
		panic("tree hash mismatch")
	}
	checked := 0
	for idx := int64(0); idx < n; idx += 97 {
		bundleN := idx / 256
		w := n - bundleN*256
		t := tlog.Tile{H: 8, L: 0, N: bundleN, W: 256}
		if w < 256 {
			t.W = int(w)
		}
		p := strings.Replace(t.Path(), "tile/8/0/", "tile/entries/", 1)
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			panic(err)
		}
		var entry []byte
		for k := int64(0); k <= idx-bundleN*256; k++ {
			l := int(binary.BigEndian.Uint16(b))
			entry, b = b[2:2+l], b[2+l:]
		}
		proof, err := tlog.ProveRecord(n, idx, hr)
		if err != nil {
			panic(err)
		}
		if err := tlog.CheckRecord(proof, n, root, idx, tlog.RecordHash(entry)); err != nil {
			panic(err)
		}
		checked++
	}
	fmt.Printf("go sumdb/tlog: tree of %d verified from tiles; %d inclusion proofs checked\n", n, checked)
}
