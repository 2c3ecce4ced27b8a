class Cart:
    def __init__(self):
        self.items = []

    def add(self, name, price, quantity=1):
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        for item in self.items:
            if item[0] == name:
                item[2] += quantity
                return
        self.items.append([name, price, quantity])

    def total(self, coupon=None):
        amount = sum(price * quantity for _, price, quantity in self.items)
        if coupon == "HALF":
            amount /= 2
        elif coupon == "TEN":
            amount -= 10
        return max(amount, 0)

    def clear(self):
        while self.items:
            self.items.pop()
