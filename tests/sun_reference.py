#!/usr/bin/python3
"""Sunrise and sunset from PyEphem (Debian's python3-ephem, built on libastro), an
implementation independent of lampi's, for tests/sun.rs. Reads "date lat lon" lines and writes
one line each: the sunrise and sunset around that date's solar noon as UTC epoch seconds, or
"polar". Same convention as lampi: the sun's centre 50' below a horizon without refraction."""
import calendar
import datetime
import sys

import ephem

sun = ephem.Sun()
for line in sys.stdin:
    date, lat, lon = line.split()
    place = ephem.Observer()
    place.lat, place.lon = lat, lon
    place.pressure = 0
    place.horizon = "-0:50"
    noon = datetime.datetime.fromisoformat(date) + datetime.timedelta(hours=12 - float(lon) / 15)
    place.date = noon
    try:
        rise = place.previous_rising(sun, use_center=True).datetime()
        place.date = noon
        set_ = place.next_setting(sun, use_center=True).datetime()
        print(calendar.timegm(rise.timetuple()), calendar.timegm(set_.timetuple()))
    except (ephem.AlwaysUpError, ephem.NeverUpError):
        print("polar")
