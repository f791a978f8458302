//! Geofences: a named circle on the Earth, and whether a reported position lies inside it.
//! Distances are great-circle distances (haversine) on a sphere of the Earth's mean radius;
//! for circles of a few kilometres the error against the ellipsoid (under 0.5 %) is far
//! below a phone's position error.

use serde::{Deserialize, Serialize};

/// The Earth's mean radius (IUGG), in metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The widest geofence accepted: a country-sized circle is a segment, not a place.
pub const MAX_RADIUS_M: f64 = 100_000.0;

/// A point given by latitude and longitude in degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
}

/// Why a position or a geofence cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    #[error("lat must be a number between -90 and 90, not {0}")]
    Latitude(f64),
    #[error("lon must be a number between -180 and 180, not {0}")]
    Longitude(f64),
    #[error("radius_m must be more than 0 and at most {MAX_RADIUS_M}, not {0}")]
    Radius(f64),
}

impl Position {
    /// A position with both coordinates in range.
    pub fn new(lat: f64, lon: f64) -> Result<Position, GeoError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::Latitude(lat));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::Longitude(lon));
        }
        Ok(Position { lat, lon })
    }
}

/// A circle a tenant names (`shop-lyon`): an `entered_area` event inside it triggers the
/// journeys that name it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geofence {
    pub center: Position,
    pub radius_m: f64,
}

impl Geofence {
    pub fn new(lat: f64, lon: f64, radius_m: f64) -> Result<Geofence, GeoError> {
        let center = Position::new(lat, lon)?;
        if !radius_m.is_finite() || radius_m <= 0.0 || radius_m > MAX_RADIUS_M {
            return Err(GeoError::Radius(radius_m));
        }
        Ok(Geofence { center, radius_m })
    }

    /// Whether `at` lies inside the circle (its edge included).
    pub fn contains(&self, at: Position) -> bool {
        distance_m(self.center, at) <= self.radius_m
    }
}

/// The great-circle distance between two positions, in metres (haversine formula).
pub fn distance_m(a: Position, b: Position) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let d_lat = lat2 - lat1;
    let d_lon = (b.lon - a.lon).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
    // `min` keeps rounding from taking asin out of its domain for antipodal points.
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lon: f64) -> Position {
        Position::new(lat, lon).unwrap()
    }

    #[test]
    fn paris_to_lyon_is_about_392_km() {
        // Notre-Dame de Paris to Place Bellecour, Lyon: 391.5 km as the crow flies.
        let d = distance_m(at(48.8530, 2.3499), at(45.7578, 4.8320));
        assert!((d - 391_500.0).abs() < 1_500.0, "{d}");
    }

    #[test]
    fn a_point_is_at_zero_distance_from_itself() {
        assert_eq!(distance_m(at(45.0, 4.0), at(45.0, 4.0)), 0.0);
    }

    #[test]
    fn a_shop_geofence_holds_the_street_but_not_the_next_district() {
        let shop = Geofence::new(45.7640, 4.8357, 150.0).unwrap();
        // About 100 m north of the centre (0.0009° of latitude).
        assert!(shop.contains(at(45.7649, 4.8357)));
        // About 1 km east.
        assert!(!shop.contains(at(45.7640, 4.8486)));
    }

    #[test]
    fn out_of_range_coordinates_and_radii_are_refused() {
        assert_eq!(Position::new(91.0, 0.0), Err(GeoError::Latitude(91.0)));
        assert_eq!(Position::new(0.0, -181.0), Err(GeoError::Longitude(-181.0)));
        assert!(Position::new(f64::NAN, 0.0).is_err());
        assert_eq!(Geofence::new(0.0, 0.0, 0.0), Err(GeoError::Radius(0.0)));
        assert!(Geofence::new(0.0, 0.0, 200_000.0).is_err());
    }

    #[test]
    fn the_antimeridian_is_crossed_the_short_way() {
        let d = distance_m(at(0.0, 179.9), at(0.0, -179.9));
        assert!(d < 25_000.0, "{d}");
    }
}
