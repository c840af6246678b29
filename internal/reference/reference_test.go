// The references against published values (the vectors udf's kernel tests
// use too).
package reference

import (
	"math"
	"testing"
)

func TestHaversineKm(t *testing.T) {
	for _, tc := range []struct {
		args [4]float64
		want float64
	}{
		{[4]float64{12.5, -7.25, 12.5, -7.25}, 0},
		{[4]float64{0, 0, 0, 1}, 111.19492664455873},
		{[4]float64{90, 0, -90, 0}, 20015.086796020572},
		{[4]float64{0, 0, 0, 180}, 20015.086796020572},
		{[4]float64{0, 179.5, 0, -179.5}, 111.19492664455873},
		{[4]float64{48.8566, 2.3522, 51.5074, -0.1278}, 343.55606034104153},
		{[4]float64{-33.8688, 151.2093, 37.7749, -122.4194}, 11947.660518547895},
	} {
		a := tc.args
		if got := HaversineKm(a[0], a[1], a[2], a[3]); math.Abs(got-tc.want) > 1e-9*max(1, tc.want) {
			t.Errorf("HaversineKm%v = %v, want %v", a, got, tc.want)
		}
	}
	if got := HaversineKm(math.NaN(), 0, 1, 1); !math.IsNaN(got) {
		t.Errorf("HaversineKm(NaN, ...) = %v, want NaN", got)
	}
}

func TestSha256Hex(t *testing.T) {
	if got := Sha256Hex([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("Sha256Hex(abc) = %s", got)
	}
}

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int32
	}{
		{"kitten", "sitting", 3}, {"", "abc", 3}, {"flaw", "lawn", 2}, {"café", "cafe", 1}, {"日本語", "日本", 1},
	} {
		if got := Levenshtein(tc.a, tc.b); got != tc.want {
			t.Errorf("Levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestJaroWinkler(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want float64
	}{
		{"MARTHA", "MARHTA", 0.961111111111111},
		{"DWAYNE", "DUANE", 0.84},
		{"DIXON", "DICKSONX", 0.813333333333333},
		{"CRATE", "TRACE", 0.733333333333333},
		{"abcxyz", "bcaxyz", 0.916666666666667},
		{"", "", 1}, {"", "a", 0}, {"ab", "ba", 0}, {"abc", "xyz", 0},
		{"café", "cafe", 0.883333333333333},
		{"日本語", "日本人", 0.822222222222222},
	} {
		for _, p := range [][2]string{{tc.a, tc.b}, {tc.b, tc.a}} {
			if got := JaroWinkler(p[0], p[1]); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("JaroWinkler(%q, %q) = %v, want %v", p[0], p[1], got, tc.want)
			}
		}
	}
}

func TestGeohash(t *testing.T) {
	for _, tc := range []struct {
		lat, lon float64
		p        int
		want     string
	}{
		{57.64911, 10.40744, 11, "u4pruydqqvj"},
		{42.6, -5.6, 5, "ezs42"},
		{37.8324, 112.5584, 9, "ww8p1r4t8"},
		{-33.8688, 151.2093, 7, "r3gx2f7"},
		{0, 0, 1, "s"},
		{90, 180, 12, "zzzzzzzzzzzz"},
		{-90, -180, 12, "000000000000"},
	} {
		if got := Geohash(tc.lat, tc.lon, tc.p); got != tc.want {
			t.Errorf("Geohash(%v, %v, %d) = %s, want %s", tc.lat, tc.lon, tc.p, got, tc.want)
		}
	}
	if GeohashValid(math.NaN(), 0, 5) || GeohashValid(0, 0, 13) || !GeohashValid(90, -180, 12) {
		t.Error("GeohashValid disagrees with geohash_encode's ranges")
	}
}
