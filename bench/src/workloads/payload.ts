/** A typical small event body, the same for every subject. */
export const orderData = (i: number) => ({
  orderId: `order-${i}`,
  customerId: `customer-${i % 97}`,
  total: 30 + (i % 10),
  items: [
    { sku: 'sku-1', qty: 1, price: 10 },
    { sku: 'sku-2', qty: 2, price: 10 },
  ],
});
