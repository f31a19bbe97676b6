package extract

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
)

// special8 says whether a word has a byte that is not plain: it misses
// none, at any of the eight places, among plain bytes of every kind (a
// borrow must not hide it), and flags no word of plain bytes.
func TestSpecial8(t *testing.T) {
	fillers := []byte{0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 'a', '0'}
	for c := range 256 {
		for pos := range 8 {
			for _, f := range fillers {
				var w [8]byte
				for k := range w {
					w[k] = f
				}
				w[pos] = byte(c)
				got := special8(binary.LittleEndian.Uint64(w[:]))
				if !plainByte[c] && !got {
					t.Fatalf("special8 misses %#x at byte %d among %#x", c, pos, f)
				}
				if plainByte[c] && got {
					t.Fatalf("special8 flags plain bytes %x", w)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		x := r.Uint64()
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], x)
		plain := true
		for _, c := range w {
			plain = plain && plainByte[c]
		}
		if plain == special8(x) {
			t.Fatalf("special8(%x) = %v", w, !plain)
		}
		// And a word of plain bytes only.
		for k := range w {
			w[k] = byte(0x20 + r.IntN(0x60))
			for !plainByte[w[k]] {
				w[k] = byte(0x20 + r.IntN(0x60))
			}
		}
		if special8(binary.LittleEndian.Uint64(w[:])) {
			t.Fatalf("special8 flags plain bytes %x", w)
		}
	}
}

// Strings whose quote, escape, control character or UTF-8 falls at every
// place of the eight-byte steps are read as encoding/json reads them.
func TestScanStringBoundaries(t *testing.T) {
	specials := []string{`\"`, `\\`, `\n`, `\u00e9`, `\ud83d\ude00`, "é", "😀", "\xff", "\x01", `"`}
	for n := range 20 {
		for _, sp := range specials {
			pre := strings.Repeat("x", n)
			for _, in := range []string{
				`{"` + pre + `":"` + pre + sp + `tail"}`,
				`{"k":"` + pre + sp + `","` + pre + sp + `":1}`,
				`{"k":"` + pre + sp, // unterminated
				`{"k":"` + pre + `"}`,
				`{"` + pre + `" : "` + pre + `" , "n":-` + strings.Repeat("7", n+1) + `}`,
			} {
				t.Run(in, func(t *testing.T) { compareScan(t, []byte(in)) })
			}
		}
	}
}
