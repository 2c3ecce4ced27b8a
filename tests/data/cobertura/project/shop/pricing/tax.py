RATES = {"fr": 0.2, "de": 0.19}


def with_tax(amount, country):
    rate = RATES.get(country)
    if rate is None:
        return amount
    return round(amount * (1 + rate), 2)


def never_called(x):
    if x:
        return 1
    return 2
