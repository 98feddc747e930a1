"""Countries the checkout offers (ISO 3166-1 alpha-2), with names for the select box."""
COUNTRIES = {
    "US": "United States", "CA": "Canada", "GB": "United Kingdom", "IE": "Ireland",
    "DE": "Germany", "FR": "France", "ES": "Spain", "IT": "Italy", "NL": "Netherlands",
    "BE": "Belgium", "AT": "Austria", "CH": "Switzerland", "SE": "Sweden", "NO": "Norway",
    "DK": "Denmark", "FI": "Finland", "PL": "Poland", "PT": "Portugal", "CZ": "Czechia",
    "GR": "Greece", "HU": "Hungary", "RO": "Romania", "AU": "Australia", "NZ": "New Zealand",
    "JP": "Japan", "KR": "South Korea", "SG": "Singapore", "IN": "India", "BR": "Brazil",
    "MX": "Mexico", "AR": "Argentina", "ZA": "South Africa", "IL": "Israel",
    "AE": "United Arab Emirates",
}
