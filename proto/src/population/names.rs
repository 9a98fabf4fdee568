//! Vietnamese name and attribute tables, with weights in their real
//! proportions (family names: share of the population in per mille).

/// Family names by share of the population (‰).
pub(crate) const FAMILY: &[(&str, u32)] = &[
    ("Nguyễn", 380),
    ("Trần", 110),
    ("Lê", 95),
    ("Phạm", 71),
    ("Hoàng", 30),
    ("Huỳnh", 21),
    ("Phan", 45),
    ("Vũ", 20),
    ("Võ", 19),
    ("Đặng", 21),
    ("Bùi", 20),
    ("Đỗ", 14),
    ("Hồ", 13),
    ("Ngô", 13),
    ("Dương", 10),
    ("Lý", 5),
    ("Đinh", 12),
    ("Trương", 10),
    ("Lâm", 8),
    ("Mai", 7),
    ("Cao", 6),
    ("Lương", 6),
    ("Hà", 6),
    ("Tạ", 4),
    ("Chu", 3),
    ("Phùng", 3),
    ("Đoàn", 8),
    ("Trịnh", 8),
    ("Lưu", 4),
    ("Tô", 3),
];

/// Middle names for men.
pub(crate) const MIDDLE_MALE: &[(&str, u32)] = &[
    ("Văn", 40),
    ("Hữu", 8),
    ("Đức", 10),
    ("Minh", 12),
    ("Quang", 8),
    ("Công", 6),
    ("Thanh", 5),
    ("Xuân", 4),
    ("Ngọc", 4),
    ("Hoàng", 3),
];

/// Middle names for women.
pub(crate) const MIDDLE_FEMALE: &[(&str, u32)] = &[
    ("Thị", 45),
    ("Ngọc", 10),
    ("Thu", 7),
    ("Thanh", 6),
    ("Kim", 5),
    ("Hồng", 5),
    ("Mai", 4),
    ("Phương", 5),
    ("Thùy", 5),
    ("Bảo", 3),
];

/// Given names for men.
pub(crate) const GIVEN_MALE: &[&str] = &[
    "An", "Bình", "Cường", "Dũng", "Hùng", "Huy", "Khoa", "Long", "Minh", "Nam", "Phong", "Quân",
    "Sơn", "Thắng", "Tuấn", "Việt", "Đạt", "Hiếu", "Hoàng", "Khánh", "Trung", "Phúc", "Thành",
    "Tùng", "Vinh", "Lộc", "Hải", "Kiên", "Nghĩa", "Đức",
];

/// Given names for women.
pub(crate) const GIVEN_FEMALE: &[&str] = &[
    "Anh", "Chi", "Dung", "Hà", "Hạnh", "Hằng", "Hoa", "Hương", "Lan", "Linh", "Mai", "Ngọc",
    "Nhung", "Phương", "Thảo", "Trang", "Vy", "Yến", "Thủy", "Hiền", "Nga", "Oanh", "Quyên", "Tâm",
    "Uyên", "Loan", "Huyền", "Nhi", "Giang", "Thư",
];

/// Ethnicities by share (‰).
pub(crate) const ETHNICITY: &[(&str, u32)] = &[
    ("Kinh", 853),
    ("Tày", 19),
    ("Thái", 19),
    ("Mường", 15),
    ("H'Mông", 15),
    ("Khmer", 14),
    ("Nùng", 11),
    ("Dao", 9),
    ("Hoa", 8),
    ("Gia Rai", 5),
    ("Ê Đê", 4),
    ("Ba Na", 3),
    ("Sán Chay", 2),
    ("Chăm", 2),
    ("Khác", 21),
];

/// Religions by share (‰); "Không" is none.
pub(crate) const RELIGION: &[(&str, u32)] = &[
    ("Không", 863),
    ("Công giáo", 61),
    ("Phật giáo", 48),
    ("Tin lành", 10),
    ("Phật giáo Hòa Hảo", 10),
    ("Cao Đài", 6),
    ("Khác", 2),
];

/// Blood types by share (‰); empty is not recorded.
pub(crate) const BLOOD: &[(&str, u32)] =
    &[("O", 380), ("B", 280), ("A", 190), ("AB", 50), ("", 100)];

/// Street names for address lines.
pub(crate) const STREETS: &[&str] = &[
    "Lê Lợi",
    "Trần Hưng Đạo",
    "Nguyễn Trãi",
    "Hai Bà Trưng",
    "Lý Thường Kiệt",
    "Hùng Vương",
    "Quang Trung",
    "Nguyễn Huệ",
    "Lê Duẩn",
    "Phan Chu Trinh",
    "Điện Biên Phủ",
    "Nguyễn Du",
    "Võ Thị Sáu",
    "Bạch Đằng",
    "Trần Phú",
    "Ngô Quyền",
];
