//go:build !race

package stream

// raceEnabled says whether this test binary runs under the race detector,
// whose shadow memory follows every heap page the process ever used.
const raceEnabled = false
