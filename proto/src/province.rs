//! The 63 provinces and centrally-run cities, by the 3-digit code that opens
//! every personal identification number, with their approximate populations
//! (2019 census, thousands) used to weight the synthetic population.

/// A province: its code, name and population weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Province {
    /// Numeric code, 1–96 (written with 3 digits).
    pub code: u16,
    /// Official name.
    pub name: &'static str,
    /// Population in thousands, for weighting.
    pub population_k: u32,
}

/// A province code as written in Pids and on the wire: three digits ("001").
pub fn code_text(code: u32) -> String {
    format!("{code:03}")
}

/// All 63 provinces, ordered by code.
pub const PROVINCES: [Province; 63] = [
    p(1, "Hà Nội", 8054),
    p(2, "Hà Giang", 855),
    p(4, "Cao Bằng", 530),
    p(6, "Bắc Kạn", 314),
    p(8, "Tuyên Quang", 785),
    p(10, "Lào Cai", 731),
    p(11, "Điện Biên", 599),
    p(12, "Lai Châu", 460),
    p(14, "Sơn La", 1249),
    p(15, "Yên Bái", 822),
    p(17, "Hòa Bình", 855),
    p(19, "Thái Nguyên", 1287),
    p(20, "Lạng Sơn", 782),
    p(22, "Quảng Ninh", 1321),
    p(24, "Bắc Giang", 1804),
    p(25, "Phú Thọ", 1464),
    p(26, "Vĩnh Phúc", 1152),
    p(27, "Bắc Ninh", 1369),
    p(30, "Hải Dương", 1893),
    p(31, "Hải Phòng", 2029),
    p(33, "Hưng Yên", 1253),
    p(34, "Thái Bình", 1861),
    p(35, "Hà Nam", 853),
    p(36, "Nam Định", 1781),
    p(37, "Ninh Bình", 983),
    p(38, "Thanh Hóa", 3641),
    p(40, "Nghệ An", 3328),
    p(42, "Hà Tĩnh", 1289),
    p(44, "Quảng Bình", 896),
    p(45, "Quảng Trị", 633),
    p(46, "Thừa Thiên Huế", 1129),
    p(48, "Đà Nẵng", 1135),
    p(49, "Quảng Nam", 1496),
    p(51, "Quảng Ngãi", 1232),
    p(52, "Bình Định", 1487),
    p(54, "Phú Yên", 873),
    p(56, "Khánh Hòa", 1232),
    p(58, "Ninh Thuận", 591),
    p(60, "Bình Thuận", 1231),
    p(62, "Kon Tum", 541),
    p(64, "Gia Lai", 1514),
    p(66, "Đắk Lắk", 1870),
    p(67, "Đắk Nông", 623),
    p(68, "Lâm Đồng", 1297),
    p(70, "Bình Phước", 995),
    p(72, "Tây Ninh", 1170),
    p(74, "Bình Dương", 2456),
    p(75, "Đồng Nai", 3097),
    p(77, "Bà Rịa - Vũng Tàu", 1149),
    p(79, "Hồ Chí Minh", 8993),
    p(80, "Long An", 1689),
    p(82, "Tiền Giang", 1765),
    p(83, "Bến Tre", 1289),
    p(84, "Trà Vinh", 1009),
    p(86, "Vĩnh Long", 1023),
    p(87, "Đồng Tháp", 1600),
    p(89, "An Giang", 1908),
    p(91, "Kiên Giang", 1723),
    p(92, "Cần Thơ", 1236),
    p(93, "Hậu Giang", 733),
    p(94, "Sóc Trăng", 1200),
    p(95, "Bạc Liêu", 907),
    p(96, "Cà Mau", 1194),
];

const fn p(code: u16, name: &'static str, population_k: u32) -> Province {
    Province {
        code,
        name,
        population_k,
    }
}

/// The province with this numeric code, if there is one.
pub fn by_code(code: u16) -> Option<&'static Province> {
    PROVINCES
        .binary_search_by_key(&code, |p| p.code)
        .ok()
        .map(|i| &PROVINCES[i])
}

/// Parses a 3-digit province code ("001") into a known province.
pub fn parse_code(s: &str) -> Option<&'static Province> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    by_code(s.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_three_sorted_unique_codes() {
        assert!(PROVINCES.windows(2).all(|w| w[0].code < w[1].code));
        assert_eq!(parse_code("079").unwrap().name, "Hồ Chí Minh");
        assert_eq!(parse_code("001").unwrap().name, "Hà Nội");
        assert!(parse_code("003").is_none());
        assert!(parse_code("97").is_none());
        assert!(parse_code("999").is_none());
    }
}
