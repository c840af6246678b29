// One function per built-in: the answer for one row.
package reference

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
)

// EarthRadiusKm is the mean earth radius haversine_km uses.
const EarthRadiusKm = 6371.0

// HaversineKm is the great-circle distance in km between two points given
// in degrees, by the atan2 form of the haversine formula (the kernel uses
// the asin form: the two agree to rounding). NaN in any argument gives NaN.
func HaversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	toRad := func(d float64) float64 { return d * math.Pi / 180 }
	dLat, dLon := toRad(lat2-lat1), toRad(lon2-lon1)
	a := math.Pow(math.Sin(dLat/2), 2) + math.Cos(toRad(lat1))*math.Cos(toRad(lat2))*math.Pow(math.Sin(dLon/2), 2)
	a = math.Min(math.Max(a, 0), 1)
	if math.IsNaN(lat1 + lon1 + lat2 + lon2) {
		return math.NaN()
	}
	return 2 * EarthRadiusKm * math.Atan2(math.Sqrt(a), math.Sqrt(1-a))
}

// Sha256Hex is the lower-case hex SHA-256 of b.
func Sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Levenshtein is the edit distance between a and b over Unicode code
// points, by the full dynamic-programming table.
func Levenshtein(a, b string) int32 {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int32, len(ra)+1)
	for i := range d {
		d[i] = make([]int32, len(rb)+1)
		d[i][0] = int32(i)
	}
	for j := range d[0] {
		d[0][j] = int32(j)
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			sub := d[i-1][j-1]
			if ra[i-1] != rb[j-1] {
				sub++
			}
			d[i][j] = min(sub, d[i-1][j]+1, d[i][j-1]+1)
		}
	}
	return d[len(ra)][len(rb)]
}

// JaroWinkler is the Jaro-Winkler similarity of a and b over code points:
// prefix scale 0.1, common prefix up to 4; two empty strings give 1, one
// empty string 0.
func JaroWinkler(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	if len(ra) == 0 && len(rb) == 0 {
		return 1
	}
	if len(ra) == 0 || len(rb) == 0 {
		return 0
	}
	window := max(len(ra), len(rb))/2 - 1
	if window < 0 {
		window = 0
	}
	usedB := make([]bool, len(rb))
	var matchA []rune
	for i, c := range ra {
		lo, hi := max(0, i-window), min(len(rb)-1, i+window)
		for k := lo; k <= hi; k++ {
			if !usedB[k] && rb[k] == c {
				usedB[k] = true
				matchA = append(matchA, c)
				break
			}
		}
	}
	m := len(matchA)
	if m == 0 {
		return 0
	}
	var matchB []rune
	for k, used := range usedB {
		if used {
			matchB = append(matchB, rb[k])
		}
	}
	half := 0
	for i := range matchA {
		if matchA[i] != matchB[i] {
			half++
		}
	}
	fm := float64(m)
	jaro := (fm/float64(len(ra)) + fm/float64(len(rb)) + (fm-float64(half)/2)/fm) / 3
	prefix := 0
	for prefix < 4 && prefix < len(ra) && prefix < len(rb) && ra[prefix] == rb[prefix] {
		prefix++
	}
	return jaro + float64(prefix)*0.1*(1-jaro)
}

// GeohashMaxPrecision is the longest geohash geohash_encode makes.
const GeohashMaxPrecision = 12

// GeohashValid reports whether geohash_encode accepts the arguments
// (others fail the call).
func GeohashValid(lat, lon float64, precision int32) bool {
	return precision >= 1 && precision <= GeohashMaxPrecision && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180
}

// Geohash is the base-32 geohash of (lat, lon) with precision characters:
// the bits of the longitude and of the latitude, each found by halving its
// range (a value on a midpoint goes up), interleaved longitude first and
// read five at a time.
func Geohash(lat, lon float64, precision int) string {
	const alphabet = "0123456789bcdefghjkmnpqrstuvwxyz"
	nbits := 5 * precision
	lonBits := halvings(lon, -180, 180, (nbits+1)/2)
	latBits := halvings(lat, -90, 90, nbits/2)
	out := make([]byte, precision)
	for i := 0; i < nbits; i++ {
		var bit byte
		if i%2 == 0 {
			bit = lonBits[i/2]
		} else {
			bit = latBits[i/2]
		}
		out[i/5] = out[i/5]<<1 | bit
	}
	for i, v := range out {
		out[i] = alphabet[v]
	}
	return string(out)
}

// halvings returns n bits of v in [lo, hi]: 1 where v is in the upper half.
func halvings(v, lo, hi float64, n int) []byte {
	bits := make([]byte, n)
	for i := range bits {
		mid := (lo + hi) / 2
		if v >= mid {
			bits[i], lo = 1, mid
		} else {
			hi = mid
		}
	}
	return bits
}
